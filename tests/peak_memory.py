"""Peak memory of a process, for the tests' memory bounds."""

# VmHWM, not ru_maxrss: Linux carries a parent's peak across fork and exec
# into the child's ru_maxrss, so a child of a big pytest would inherit it.
READ_PEAK_KB = "[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]"


def peak_rss_kb():
    """This process's peak RSS since its exec, in kB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


# batchflow's main in a child, then its peak RSS (kB) on stdout
PEAK_AFTER_MAIN = ("import sys; from agent.cli.main import main; rc = main(sys.argv[1:]); "
                   f"print({READ_PEAK_KB}); sys.exit(rc)")
