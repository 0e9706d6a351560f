"""A Python program that spawns subprocesses in the usual ways.
argv[1]: a work directory, created and removed, so two runs do the same work."""
import os
import subprocess
import sys

work = sys.argv[1]
os.mkdir(work)
with open(os.path.join(work, "data.txt"), "w") as f:
    f.write("x y z\n")
subprocess.run(["ls", work], stdout=subprocess.DEVNULL, check=True)
p1 = subprocess.Popen(["cat", os.path.join(work, "data.txt")], stdout=subprocess.PIPE)
p2 = subprocess.Popen(["tr", "a-z", "A-Z"], stdin=p1.stdout, stdout=subprocess.DEVNULL)
p1.stdout.close()
p2.wait()
p1.wait()
pid = os.fork()
if pid == 0:
    try:
        open(os.path.join(work, "missing.txt"))
    except FileNotFoundError:
        os._exit(3)
    os._exit(0)
_, status = os.waitpid(pid, 0)
rc = subprocess.call(["sh", "-c", "exit 5"])
os.unlink(os.path.join(work, "data.txt"))
os.rmdir(work)
sys.exit(os.waitstatus_to_exitcode(status) + rc)   # 3 + 5
