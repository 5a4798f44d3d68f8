#!/bin/sh
# chassis_control program of a simulated BMC (ipmi_sim runs it with popen):
#   chassis.sh DIR get power...          -> "power:1" or "power:0" (DIR/power, kept by the driver)
#   chassis.sh DIR set power 0|1         -> asks the driver to kill / boot the node's guest and
#   chassis.sh DIR set reset 1              waits until it has (a request file DIR/req-*, answered
#                                           by DIR/ack-*); power on returns once UML is running,
#                                           not when the guest has booted, like a real BMC
# The BMC runs in the lab's network namespace but in its own PID namespace: it cannot see,
# kill or start the guest itself, so the test driver (tests/stack/bmc.py) does it.
dir="$1"; shift; op="$1"; shift
echo "$(date +%s.%N) $op $*" >> "$dir/chassis.log"      # what the BMC was asked, for the timeline
request() {
    id="$(date +%s%N)-$$"
    echo "$1" > "$dir/.req-$id" && mv "$dir/.req-$id" "$dir/req-$id"
    i=0
    while [ ! -e "$dir/ack-$id" ]; do
        i=$((i+1)); [ $i -lt 600 ] || { echo "driver did not answer" >&2; exit 1; }
        sleep 0.05
    done
    rm -f "$dir/ack-$id"
}
case "$op" in
get) for p in "$@"; do case "$p" in
         power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)";;
         boot)  echo "boot:default";;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
set) while [ $# -ge 2 ]; do case "$1" in
         power) case "$2" in 0|1) request "$2";; *) echo "Invalid power value $2"; exit 1;; esac;;
         reset) request reset;;
         shutdown) request 0;;
         boot) : ;;
         identify) shift;;
         *) echo "Invalid parameter: $1"; exit 1;; esac; shift 2; done;;
check) exit 1;;
*) echo "Unknown op $op"; exit 1;;
esac
