#!/bin/sh
# /init of the Linux test initramfs (built by xtask::linux; busybox-static).
# Its first line marks "userspace reached" (cargo xtask bench-linux times it).
#
# Kernel command line (read from /proc/cmdline; dotted words are ignored by
# the kernel):
#   warden.check            run the checks below, print RESULT PASS|FAIL, then
#                           power off (poweroff -f: SCHEDOP_shutdown on Xen)
#   warden.shell            a shell on the console (after the checks, if any);
#                           the default when warden.check is not given
#   warden.expect_cpus=N    CPUs that must be online (default 1)
#   warden.expect_xen=0|1   the Xen PVH checks (default 1); 0 on bare QEMU,
#                           where the timer line is LOC instead
#   warden.expect_dom0=0|1  with the Xen checks: whether this kernel is the
#                           initial domain (default 0: a domU)
#   warden.expect_pcpus=N   dom0: the physical CPUs (default expect_cpus)
#   warden.sleep=S          the timed sleep (default 5)
#   warden.debug_exit=1     bare QEMU only: write the result to the
#                           isa-debug-exit port 0xf4 (0x10 PASS, 0x11 FAIL)
#
# /etc/warden-exec (added to the initramfs by `cargo xtask run --exec CMD`):
# after the checks (if any), run its text with sh -c, print
# "warden-init: exec status N" and power off, instead of the shell.
echo "warden-init: userspace reached (pid $$)"
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts 2>/dev/null

arg() {
    # arg NAME DEFAULT: the value of warden.NAME= on the command line
    v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^warden\.$1=//p" | tail -n 1)
    echo "${v:-$2}"
}
flag() {
    tr ' ' '\n' </proc/cmdline | grep -qx "warden\.$1"
}

say() { echo "warden-init: $*"; }
failed=0
check() {
    # check CONDITION-STATUS TEXT
    if [ "$1" = 0 ]; then
        say "CHECK ok $2"
    else
        say "CHECK FAIL $2"
        failed=$((failed + 1))
    fi
}

say "kernel $(uname -r), command line: $(cat /proc/cmdline)"

if flag check; then
    cpus=$(arg expect_cpus 1)
    xen=$(arg expect_xen 1)
    secs=$(arg sleep 5)

    # 1. CPUs online ("0-1", "0,2-3", ...).
    online=$(cat /sys/devices/system/cpu/online)
    n=$(echo "$online" | tr ',' '\n' | awk -F- '{ n += ($2 == "" ? 1 : $2 - $1 + 1) } END { print n }')
    [ "$n" = "$cpus" ]
    check $? "CPUs online: $n ($online), expected $cpus"

    if [ "$xen" = 1 ]; then
        # 2. The PVH entry and the Xen clock.
        # (Linux 6.1.192 says "Booting kernel on Xen PVH"; earlier 6.1
        # releases "Booting paravirtualized kernel on Xen PVH".)
        line=$(dmesg | grep -m 1 -E "Booting (paravirtualized )?kernel on")
        echo "$line" | grep -qE "Booting (paravirtualized )?kernel on Xen PVH$"
        check $? "dmesg: ${line#*] }"
        line=$(dmesg | grep -m 1 "clocksource: Switched to clocksource")
        echo "$line" | grep -q "clocksource: Switched to clocksource xen"
        check $? "dmesg: ${line#*] }"
        cs=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
        [ "$cs" = xen ]
        check $? "current clocksource: $cs"
        t="$(cat /sys/hypervisor/type 2>/dev/null) $(cat /sys/hypervisor/guest_type 2>/dev/null)"
        [ "$t" = "xen PVH" ]
        check $? "/sys/hypervisor: $t"

        # The initial domain: XENFEAT_dom0 (bit 11 of the features Xen
        # reports, /sys/hypervisor/properties/features), and the physical
        # CPUs the pcpu driver (dom0 only) finds with XENPF_get_cpuinfo.
        dom0=$(arg expect_dom0 0)
        f=$(cat /sys/hypervisor/properties/features 2>/dev/null)
        isdom0=$(( (0x${f:-0} >> 11) & 1 ))
        pcpus=$(ls -d /sys/devices/system/xen_cpu/xen_cpu* 2>/dev/null | wc -l)
        online=$(cat /sys/devices/system/xen_cpu/xen_cpu*/online 2>/dev/null | tr -d '\n')
        if [ "$dom0" = 1 ]; then
            # (CPU 0 has no "online" file: Xen never offlines it.)
            want=$(arg expect_pcpus "$cpus")
            [ "$isdom0" = 1 ] && [ "$pcpus" = "$want" ] && [ -z "$(echo "$online" | tr -d 1)" ]
            check $? "initial domain: features $f (XENFEAT_dom0 $isdom0), $pcpus physical CPUs (expected $want), online '$online'"
        else
            [ "$isdom0" = 0 ] && [ "$pcpus" = 0 ]
            check $? "not the initial domain: features $f (XENFEAT_dom0 $isdom0), $pcpus physical CPUs"
        fi
        # The per-CPU timer event channels: VIRQ_TIMER bound per CPU, shown as
        # "xen-percpu    -virq      timerN".
        pattern='xen-percpu +-virq +timer[0-9]+$'
    else
        pattern='^ *LOC:'
    fi

    # 3. Timer interrupts counting on every CPU: the per-CPU sums of the
    #    matching /proc/interrupts lines, before and after the sleep.
    counts() {
        grep -E "$pattern" /proc/interrupts |
            awk -v n="$n" '{ for (i = 1; i <= n; i++) s[i] += $(i + 1) }
                END { for (i = 1; i <= n; i++) printf "%d ", s[i] }'
    }
    grep -E "$pattern" /proc/interrupts | sed 's/^/warden-init: interrupts: /'
    before=$(counts)

    # 4. The timed sleep. Each line carries the guest's uptime, read with a
    #    shell builtin right before it is printed: the host compares the
    #    guest's elapsed time with its own between the two lines (the guest
    #    clock's rate), and the guest's with the sleep (no early or lost
    #    wake-up). Forking `sleep` takes guest time that grows with the
    #    host's load; it is in both measures, so the rate check ignores it.
    read -r t0 _ </proc/uptime
    say "sleep $secs: start (uptime=$t0)"
    sleep "$secs"
    read -r t1 _ </proc/uptime
    say "sleep $secs: end (uptime=$t1)"
    say "sleep $secs took $(echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }') s of guest uptime"

    after=$(counts)
    ok=$(echo "$before;$after" | awk -F';' -v n="$n" '{
            split($1, b, " "); split($2, a, " "); ok = 1
            for (i = 1; i <= n; i++) if (a[i] + 0 <= b[i] + 0 || b[i] + 0 == 0) ok = 0
            print ok }')
    [ "$ok" = 1 ]
    check $? "timer interrupts counting on every CPU: $before-> $after"
    [ "$ok" = 1 ] || sed 's/^/warden-init: interrupts: /' /proc/interrupts

    if [ "$failed" = 0 ]; then
        say "RESULT PASS"
        code='\020'
    else
        say "RESULT FAIL ($failed check(s) failed)"
        code='\021'
    fi
    if flag debug_exit=1; then
        printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    fi
    if ! flag shell && [ ! -f /etc/warden-exec ]; then
        say "powering off"
        poweroff -f
    fi
fi

if [ -f /etc/warden-exec ]; then
    cd /root
    sh -c "$(cat /etc/warden-exec)"
    status=$?
    cd /
    say "exec status $status"
    poweroff -f
fi

say "shell on the console; 'poweroff -f' to power off"
while true; do
    setsid cttyhack sh -l
    say "shell exited: powering off"
    poweroff -f
done
