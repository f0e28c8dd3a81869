"""Every name of the uWSGI 2.0.30 ``uwsgi`` module (api.md §2), present or absent.

Each entry points to the test that covers its behaviour. Names owned by subsystems
other helpers write (timers, cron, file monitors, mules, spooler) are checked only if
their module is installed.
"""
from __future__ import annotations

import importlib.util

import pytest

from _sim import start

#: name -> where its behaviour is tested
NAMES_2_0_30 = {
    "SPOOL_IGNORE": "test_simulation", "SPOOL_OK": "test_simulation",
    "SPOOL_RETRY": "test_simulation",
    "SymbolsImporter": "test_misc::test_not_simulated_names_exist_and_raise",
    "SymbolsZipImporter": "test_misc::test_not_simulated_names_exist_and_raise",
    "ZipImporter": "test_misc::test_not_simulated_names_exist_and_raise",
    "accepting": "facade", "add_cron": "cron", "add_file_monitor": "filemon",
    "add_rb_timer": "timers", "add_timer": "timers",
    "add_var": "test_misc::test_info_and_logging_helpers",
    "alarm": "test_misc::test_info_and_logging_helpers", "applications": "facade",
    "async_connect": "test_misc::test_not_simulated_names_exist_and_raise",
    "async_sleep": "test_misc::test_info_and_logging_helpers", "buffer_size": "facade",
    **{f"cache_{n}": "test_cache" for n in (
        "clear", "dec", "del", "div", "exists", "get", "inc", "keys", "mul", "num", "set",
        "update")},
    "call": "test_rpc", "chunked_read": "test_misc::test_errors_outside_async_and_websockets",
    "chunked_read_nb": "test_misc::test_errors_outside_async_and_websockets",
    "cl": "test_misc::test_info_and_logging_helpers",
    "close": "test_misc::test_not_simulated_names_exist_and_raise",
    "connect": "test_misc::test_not_simulated_names_exist_and_raise",
    "connection_fd": "test_misc", "cores": "facade",
    "disconnect": "test_wire",
    "embedded_data": "test_misc::test_errors_outside_async_and_websockets",
    "extract": "test_misc::test_extract_and_parsefile", "farm_get_msg": "mules",
    "farm_msg": "mules", "get_logvar": "test_misc::test_info_and_logging_helpers",
    "green_schedule": "test_misc::test_info_and_logging_helpers", "has_threads": "facade",
    "hostname": "facade", "i_am_the_spooler": "facade", "in_farm": "mules",
    "is_a_reload": "facade",
    "is_connected": "test_misc::test_not_simulated_names_exist_and_raise",
    "is_locked": "test_locks", "listen_queue": "test_misc::test_info_and_logging_helpers",
    "lock": "test_locks", "log": "facade",
    "log_this_request": "test_misc::test_info_and_logging_helpers",
    "logsize": "test_misc::test_info_and_logging_helpers", "loop": "facade",
    "magic_table": "facade", "masterpid": "facade",
    "mem": "test_misc::test_info_and_logging_helpers",
    **{f"metric_{n}": "test_metrics" for n in (
        "dec", "div", "get", "inc", "mul", "set", "set_max", "set_min")},
    "micros": "facade", "mule_get_msg": "mules", "mule_id": "facade", "mule_msg": "mules",
    "numproc": "facade", "offload": "test_misc::test_info_and_logging_helpers",
    "opt": "facade", "parsefile": "test_misc::test_extract_and_parsefile", "ready": "facade",
    "ready_fd": "test_misc::test_info_and_logging_helpers",
    "recv": "test_misc::test_not_simulated_names_exist_and_raise",
    "register_rpc": "test_rpc", "register_signal": "signals", "reload": "facade",
    "request_id": "facade", "route": "test_misc::test_not_simulated_names_exist_and_raise",
    "rpc": "test_rpc", "rpc_list": "test_rpc",
    "send": "test_wire",
    "sendfile": "test_wire",
    "set_logvar": "test_misc::test_info_and_logging_helpers",
    "set_user_harakiri": "facade",
    "set_warning_message": "test_misc::test_info_and_logging_helpers",
    "setprocname": "facade", "signal": "signals", "signal_received": "signals",
    "signal_registered": "signals", "signal_wait": "signals", "sockets": "facade",
    "start_response": "test_wire",
    "started_on": "facade", "stop": "facade",
    "suspend": "test_misc::test_info_and_logging_helpers", "total_requests": "facade",
    "unbit": "facade", "unlock": "test_locks", "version": "facade",
    "version_info": "facade",
    "wait_fd_read": "test_misc::test_errors_outside_async_and_websockets",
    "wait_fd_write": "test_misc::test_errors_outside_async_and_websockets",
    **{f"websocket_{n}": "test_websocket::test_echo_over_a_websocket" for n in (
        "handshake", "recv", "send")},
    "websocket_recv_nb": "test_websocket::test_websocket_calls_without_ssl_match_the_pyuwsgi_wheel",
    "websocket_send_binary": "test_websocket::test_websocket_calls_without_ssl_match_the_pyuwsgi_wheel",
    "worker_id": "facade", "workers": "facade",
}

#: groups that only exist with an option (api.md §2)
OPTIONAL = {
    ("--queue", "4", "--queue-blocksize", "4096"): (
        ["queue_push", "queue_pop", "queue_pull", "queue_get", "queue_set", "queue_last",
         "queue_slot", "queue_pull_slot", "queue_size"], "test_queue"),
    ("--sharedarea", "1"): (
        ["sharedarea_read", "sharedarea_write", "sharedarea_read8", "sharedarea_readbyte",
         "sharedarea_write8", "sharedarea_writebyte", "sharedarea_read16",
         "sharedarea_write16", "sharedarea_read32", "sharedarea_write32",
         "sharedarea_read64", "sharedarea_readlong", "sharedarea_write64",
         "sharedarea_writelong", "sharedarea_inc64", "sharedarea_inclong",
         "sharedarea_dec64", "sharedarea_inc32", "sharedarea_dec32", "sharedarea_rlock",
         "sharedarea_wlock", "sharedarea_unlock", "sharedarea_memoryview",
         "sharedarea_object"], "test_sharedarea"),
    ("--snmp",): (
        ["snmp_set_counter32", "snmp_set_counter64", "snmp_set_gauge",
         "snmp_incr_counter32", "snmp_incr_counter64", "snmp_incr_gauge",
         "snmp_decr_counter32", "snmp_decr_counter64", "snmp_decr_gauge",
         "snmp_set_community"], "test_metrics::test_snmp"),
}

#: names that must NOT exist in 2.0.30 (api.md §2)
ABSENT = ["get_option", "set_option", "send_message", "sharedarea_update",
          "sharedarea_wait", "sharedarea_inc8", "add_ms_timer", "install_mule_msg_hook",
          "request_context", "mule_file", "spooler_dir", "i_am_the_lord", "lord_scroll",
          "scrolls", "cluster", "applist", "spool", "queue_push", "sharedarea_read",
          "snmp_set_gauge"]

#: which subsystem module must be installed for a name whose pointer is not a test file
OWNER = {"mules": "simuwsgi.subsystems.mules", "timers": "simuwsgi.subsystems.timers", "cron": "simuwsgi.subsystems.cron",
         "filemon": "simuwsgi.subsystems.filemon", "signals": "simuwsgi.subsystems.signals"}


def _installed(pointer: str) -> bool:
    mod = OWNER.get(pointer)
    return mod is None or importlib.util.find_spec(mod) is not None


@pytest.fixture(scope="module")
def module_names(tmp_path_factory):
    d = tmp_path_factory.mktemp("names")
    with start(d, "--processes", "2", "--cache", "100", "--locks", "2") as sim:
        return set(dir(sim.uwsgi))


@pytest.mark.parametrize("name", sorted(NAMES_2_0_30))
def test_name_present(name, module_names):
    assert _installed(NAMES_2_0_30[name]), f"{NAMES_2_0_30[name]} is missing"
    assert name in module_names, f"uwsgi.{name} missing (covered by {NAMES_2_0_30[name]})"


@pytest.mark.parametrize("name", ABSENT)
def test_name_absent(name, module_names):
    assert name not in module_names


@pytest.mark.parametrize("options", list(OPTIONAL), ids=lambda o: o[0])
def test_optional_groups(options, tmp_path):
    names, _pointer = OPTIONAL[options]
    with start(tmp_path, *options) as sim:
        missing = [n for n in names if not hasattr(sim.uwsgi, n)]
        assert not missing


def test_every_pointer_names_a_real_test_file():
    import pathlib

    here = pathlib.Path(__file__).parent
    for pointer in set(NAMES_2_0_30.values()) | {p for _n, p in OPTIONAL.values()}:
        if pointer.startswith("test_"):
            assert (here / (pointer.split("::")[0] + ".py")).exists(), pointer
