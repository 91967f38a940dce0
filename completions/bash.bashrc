
# pys6: bash completion (pysvstat, pysvc, git...) in every interactive shell. Debian leaves it
# to ~/.bashrc, and SSH's login shells read no ~/.bashrc here: /etc/bash.bashrc they all read.
if ! shopt -oq posix && [ -z "${BASH_COMPLETION_VERSINFO:-}" ] && [ -f /usr/share/bash-completion/bash_completion ]; then
    . /usr/share/bash-completion/bash_completion
fi
