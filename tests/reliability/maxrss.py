"""Run a command with a time limit and report its peak memory (tests/reliability/).

Usage: python3 maxrss.py TIMEOUT_SECONDS COMMAND [ARGS...]
The command's stdout and stderr pass through; then one line on stderr:
  MAXRSS <kilobytes> EXIT <code> TIMEOUT <0|1>
"""
import resource
import subprocess
import sys

limit, argv = float(sys.argv[1]), sys.argv[2:]
proc = subprocess.Popen(argv)
timed_out = 0
try:
    code = proc.wait(timeout=limit)
except subprocess.TimeoutExpired:
    proc.kill()
    code = proc.wait()
    timed_out = 1
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(f"MAXRSS {rss} EXIT {code} TIMEOUT {timed_out}\n")
