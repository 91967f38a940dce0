# bash completion for pysvstat and pysvc: their options, and the names of the services the
# running pyinit supervises. Installed as /usr/share/bash-completion/completions/pysvstat and
# .../pysvc (bash-completion loads it on the first Tab after either name); works sourced on its
# own too, since it uses nothing of bash-completion's.
# The option lists are each client's own (tests/test_completion.py compares them with --help).

_PYS6_SVSTAT_OPTIONS="-u -w -N -r -p -g -e -s -t -o -n --json --check --check=ready --check=live
    --log -f --follow --timestamps --raw --forensics --prometheus --watch --interval --help --version"
_PYS6_SVSTAT_FIELDS="up wantedup normallyup ready paused pid pgid exitcode signal signum
    updownsince readysince updownfor readyfor"
_PYS6_SVC_OPTIONS="-a -b -q -h -k -t -i -1 -2 -p -c -y -s -P -C -K -u -U -d -D -o -O -r
    -wu -wU -wd -wD -wr -wR -T --ssh-forced --help --version"
_PYS6_SVC_SIGNALS="ALRM ABRT QUIT HUP KILL TERM INT USR1 USR2 STOP CONT WINCH"

# The services' names, from the pyinit the client would talk to: `pysvstat -o up` prints one
# "NAME: true|false" line per service (a name holds no colon). Bounded: a pyinit that does not
# answer costs a Tab 2 s at most, and none running (exit 102) costs nothing.
_pys6_services() {
    local svstat=pysvstat line
    case $1 in */*) svstat=${1%/*}/pysvstat ;; esac
    while IFS= read -r line; do
        printf '%s\n' "${line%%:*}"
    done < <(PYS6_CLIENT_TIMEOUT=2000 "$svstat" -o up 2>/dev/null)
}

# COMPREPLY = the words of $1 (newline- or space-separated) that start with $2.
_pys6_reply() {
    local word
    COMPREPLY=()
    for word in $1; do
        [[ $word == "$2"* ]] && COMPREPLY+=("$word")
    done
}

# OPTIONS COMMAND CUR: an option for a word that starts with -, else a service's name
_pys6_options_or_services() {
    if [[ $3 == -* ]]; then
        _pys6_reply "$1" "$3"
    else
        _pys6_reply "$(_pys6_services "$2")" "$3"
    fi
    return 0
}

_pys6_pysvstat() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local before=${COMP_WORDS[COMP_CWORD-2]:-}
    # "--check=" is split at the = (it is in COMP_WORDBREAKS): --check = li, or --check =
    if [[ $prev == "=" && $before == --check ]]; then
        _pys6_reply "ready live" "$cur"; return 0
    fi
    if [[ $cur == "=" && $prev == --check ]]; then
        _pys6_reply "ready live" ""; return 0
    fi
    case $prev in
        -o)
            # a comma-separated list: complete the field after the last comma
            local done_part="" field=$cur
            [[ $cur == *,* ]] && done_part=${cur%,*}, field=${cur##*,}
            _pys6_reply "$_PYS6_SVSTAT_FIELDS" "$field"
            COMPREPLY=("${COMPREPLY[@]/#/$done_part}")
            return 0 ;;
        --lines|--interval) COMPREPLY=(); return 0 ;;
        -n)
            local word
            for word in "${COMP_WORDS[@]}"; do  # with --log, -n takes a number of lines
                [[ $word == --log ]] && { COMPREPLY=(); return 0; }
            done ;;
    esac
    _pys6_options_or_services "$_PYS6_SVSTAT_OPTIONS" "$1" "$cur"
}

_pys6_pysvc() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -T) COMPREPLY=(); return 0 ;;
        -s) _pys6_reply "$_PYS6_SVC_SIGNALS" "$cur"; return 0 ;;
    esac
    local word
    for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        [[ $word == --ssh-forced ]] && { COMPREPLY=(); return 0; }  # takes nothing after it
    done
    _pys6_options_or_services "$_PYS6_SVC_OPTIONS" "$1" "$cur"
}

complete -F _pys6_pysvstat pysvstat
complete -F _pys6_pysvc pysvc
