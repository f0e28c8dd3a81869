"""Hostile app: starts host commands every way Python can (subprocess, os.system,
os.popen, os.posix_spawn, os.exec*)."""
import os
import subprocess
import sys


def application(env, start_response):
    how = env["PATH_INFO"].strip("/")
    try:
        if how == "run":
            out = subprocess.run(["echo", "hello"], capture_output=True, check=True).stdout
        elif how == "shell":
            out = subprocess.check_output("echo $((6 * 7))", shell=True)
        elif how == "system":
            out = str(os.system("exit 3") >> 8).encode()
        elif how == "popen":
            with os.popen("echo popen") as pipe:
                out = pipe.read().encode()
        elif how == "spawn":
            pid = os.posix_spawnp("true", ["true"], os.environ)
            out = str(os.waitpid(pid, 0)[1]).encode()
        elif how == "exec":
            os.execlp("sh", "sh", "-c", "exit 4")
            out = b"still here"
        elif how == "exec_missing":
            os.execv("/no/such/program", ["x"])
            out = b"still here"
        elif how == "pid":
            out = b"%d" % os.getpid()
        else:
            out = b"?"
    except NotImplementedError as exc:
        out = b"refused: " + str(exc).encode()
    except OSError as exc:
        out = b"OSError: " + str(exc.errno).encode()
    start_response("200 OK", [])
    return [out]
