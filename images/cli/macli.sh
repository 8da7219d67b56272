#!/bin/sh
# macli: a small busybox-sh command line tool, the example of a one-shot CLI image.
# Exit codes: 0 success, 64 usage error (EX_USAGE) with a message on standard error.

PROG=macli
VERSION=1.0.0
TARGET_ARCH="@TARGETARCH@"
TARGET_PLATFORM="@TARGETPLATFORM@"

usage() {
    cat <<USAGE
usage: $PROG COMMAND [ARG...]

commands:
  greet NAME...      print "Hello, NAME!" for each NAME
  add INT...         print the sum of the integers (64-bit arithmetic)
  mul INT...         print the product of the integers (64-bit arithmetic)
  arch               print the machine name (uname -m)
  version            print the version and the platform the image was built for
  help, -h, --help   print this help
USAGE
}

die_usage() {
    echo "$PROG: $*" >&2
    usage >&2
    exit 64
}

# Check that $1 is an optional '-' and decimal digits, and set $int to its value with leading
# zeros dropped ($(( )) would read "010" as octal). At most 18 significant digits, so every
# operand is within the 64-bit range of $(( )).
parse_int() {
    sign=
    digits=$1
    case $digits in -*) sign=- digits=${digits#-} ;; esac
    case $digits in
        '' | *[!0-9]*) die_usage "not an integer: '$1'" ;;
    esac
    while :; do
        case $digits in
            0?*) digits=${digits#0} ;;
            *) break ;;
        esac
    done
    [ ${#digits} -le 18 ] || die_usage "integer out of range: '$1'"
    int=$sign$digits
}

[ $# -gt 0 ] || die_usage "missing command"
command=$1
shift

case $command in
    help | -h | --help)
        [ $# -eq 0 ] || die_usage "help takes no arguments"
        usage
        ;;
    greet)
        [ $# -gt 0 ] || die_usage "greet needs at least one NAME"
        for name in "$@"; do
            case $name in -*) die_usage "unknown option: $name" ;; esac
            echo "Hello, $name!"
        done
        ;;
    add | mul)
        [ $# -gt 0 ] || die_usage "$command needs at least one INT"
        if [ "$command" = add ]; then result=0; else result=1; fi
        for n in "$@"; do
            parse_int "$n"
            if [ "$command" = add ]; then
                result=$((result + int))
            else
                result=$((result * int))
            fi
        done
        echo "$result"
        ;;
    arch)
        [ $# -eq 0 ] || die_usage "arch takes no arguments"
        uname -m
        ;;
    version | --version)
        [ $# -eq 0 ] || die_usage "version takes no arguments"
        echo "$PROG $VERSION $TARGET_ARCH ($TARGET_PLATFORM)"
        ;;
    -*) die_usage "unknown option: $command" ;;
    *) die_usage "unknown command: $command" ;;
esac
