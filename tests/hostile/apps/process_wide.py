"""Hostile app: at import it changes process-wide state real apps change (an APM agent's
import hook, gettext's ``_`` in builtins, a working directory, a profiler, uvloop-style
event loop policy); each change is its own processes' and must not outlive the
simulation in the test process."""
import asyncio
import builtins
import os
import sys
import threading


class Finder:
    def find_spec(self, *args, **kwargs):
        return None


sys.meta_path.insert(0, Finder())
sys.path_hooks.insert(0, lambda path: (_ for _ in ()).throw(ImportError()))
builtins._ = lambda text: text
builtins.APP_GLOBAL = 1
os.chdir(os.path.dirname(os.path.abspath(__file__)) + "/..")
sys.setprofile(lambda *args: None)
threading.setprofile(lambda *args: None)
threading.settrace(lambda *args: None)
asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())


def application(env, start_response):
    start_response("200 OK", [])
    return [_("ok").encode()]  # noqa: F821 - builtins._, as gettext.install() makes it
