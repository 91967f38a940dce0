#!/command/with-contenv bash
# shellcheck shell=bash
program_name="mlapi-config"
