"""Sans-IO codec for uWSGI 2.0's wire protocol, byte-exact against uWSGI 2.0.30.

In the h11 manner: a :class:`Connection` turns received bytes into events
(``receive_data`` / ``next_event``) and events into bytes (``send``); it never touches
a socket, a clock or a thread, so the simulator's virtual network and the real trio
server drive the same code. Datagram formats (subscription, Legion, cache
replication), the stats server document, the spool-file format and the request
head of ``--http-socket`` are plain encode/decode functions.

Every message is one head event, zero or more :class:`Data` and an
:class:`EndOfMessage`; uWSGI's only failure signal - close without a byte - is the
event :class:`NoReply`. Malformed input raises :class:`RemoteProtocolError` (never
``struct.error``, ``IndexError`` or ``UnicodeDecodeError``).
"""

from ._cache import CacheDelete as CacheDelete
from ._cache import CacheDictGet as CacheDictGet
from ._cache import CacheDump as CacheDump
from ._cache import CacheDumpResponse as CacheDumpResponse
from ._cache import CacheGet as CacheGet
from ._cache import CacheGetStream as CacheGetStream
from ._cache import CacheMagicRequest as CacheMagicRequest
from ._cache import CacheMagicResponse as CacheMagicResponse
from ._cache import CacheSet as CacheSet
from ._cache import CacheValue as CacheValue
from ._cache_udp import CacheUdpDelete as CacheUdpDelete
from ._cache_udp import CacheUdpUpdate as CacheUdpUpdate
from ._cache_udp import decode_cache_udp_datagram as decode_cache_udp_datagram
from ._cache_udp import encode_cache_udp_datagram as encode_cache_udp_datagram
from ._connection import Connection as Connection
from ._connection import Event as Event
from ._control import Ack as Ack
from ._control import Echo as Echo
from ._control import Ping as Ping
from ._control import Pong as Pong
from ._control import SignalRequest as SignalRequest
from ._control import SpoolRequest as SpoolRequest
from ._control import UnknownRequest as UnknownRequest
from ._dispatch import ReplyEvent as ReplyEvent
from ._dispatch import RequestEvent as RequestEvent
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import SpoolFileError as SpoolFileError
from ._events import NEED_DATA as NEED_DATA
from ._events import ConnectionClosed as ConnectionClosed
from ._events import Data as Data
from ._events import EndOfMessage as EndOfMessage
from ._events import NeedData as NeedData
from ._events import NoReply as NoReply
from ._events import RawResponse as RawResponse
from ._header import HEADER_SIZE as HEADER_SIZE
from ._header import Header as Header
from ._header import decode_header as decode_header
from ._header import encode_header as encode_header
from ._header import encode_packet as encode_packet
from ._http import HttpResponse as HttpResponse
from ._http import encode_http_head as encode_http_head
from ._http import internal_error_response as internal_error_response
from ._http import not_found_response as not_found_response
from ._http import response_protocol as response_protocol
from ._http_request import HttpRequestHead as HttpRequestHead
from ._http_request import http_url_decode as http_url_decode
from ._http_request import parse_http_request as parse_http_request
from ._legion import LegionAnnounce as LegionAnnounce
from ._legion import LegionCipher as LegionCipher
from ._legion import decode_legion_announce as decode_legion_announce
from ._legion import decrypt_legion_datagram as decrypt_legion_datagram
from ._legion import encode_legion_announce as encode_legion_announce
from ._numbers import content_length as content_length
from ._numbers import str_num as str_num
from ._rpc import RpcHttpRequest as RpcHttpRequest
from ._rpc import RpcRequest as RpcRequest
from ._rpc import RpcResponse as RpcResponse
from ._rpc import rpc_http_call as rpc_http_call
from ._rpc import rpc_http_response as rpc_http_response
from ._spoolfile import SPOOL_FILE_PREFIX as SPOOL_FILE_PREFIX
from ._spoolfile import SpoolFile as SpoolFile
from ._spoolfile import SpoolFileName as SpoolFileName
from ._spoolfile import decode_spool_file as decode_spool_file
from ._spoolfile import encode_spool_file as encode_spool_file
from ._spoolfile import encode_spool_vars as encode_spool_vars
from ._spoolfile import parse_spool_file_name as parse_spool_file_name
from ._spoolfile import spool_at as spool_at
from ._spoolfile import spool_file_name as spool_file_name
from ._spoolfile import spool_options as spool_options
from ._spoolfile import strverscmp as strverscmp
from ._spoolfile import versionsort as versionsort
from ._state import CLIENT as CLIENT
from ._state import SERVER as SERVER
from ._state import Role as Role
from ._state import State as State
from ._stats import STATS_HTTP_HEAD as STATS_HTTP_HEAD
from ._stats import decode_stats as decode_stats
from ._stats import decode_stats_http as decode_stats_http
from ._stats import encode_stats as encode_stats
from ._stats import encode_stats_http as encode_stats_http
from ._stats import escape_json as escape_json
from ._subscription import Subscription as Subscription
from ._subscription import decode_subscription as decode_subscription
from ._subscription import encode_subscription as encode_subscription
from ._subscription import subscription_hash as subscription_hash
from ._subscription import subscription_signed_part as subscription_signed_part
from ._vars import Pairs as Pairs
from ._vars import decode_array as decode_array
from ._vars import decode_dict as decode_dict
from ._vars import decode_dict_prefix as decode_dict_prefix
from ._vars import decode_request_vars as decode_request_vars
from ._vars import encode_array as encode_array
from ._vars import encode_vars as encode_vars
from ._vars import last_value as last_value
from ._wsgi import VARS_MODIFIERS as VARS_MODIFIERS
from ._wsgi import Request as Request

__all__ = [  # noqa: RUF022 - plain sorted(), as a test checks
    "Ack",
    "CLIENT",
    "CacheDelete",
    "CacheDictGet",
    "CacheDump",
    "CacheDumpResponse",
    "CacheGet",
    "CacheGetStream",
    "CacheMagicRequest",
    "CacheMagicResponse",
    "CacheSet",
    "CacheUdpDelete",
    "CacheUdpUpdate",
    "CacheValue",
    "Connection",
    "ConnectionClosed",
    "Data",
    "Echo",
    "EndOfMessage",
    "Event",
    "HEADER_SIZE",
    "Header",
    "HttpRequestHead",
    "HttpResponse",
    "LegionAnnounce",
    "LegionCipher",
    "LocalProtocolError",
    "NEED_DATA",
    "NeedData",
    "NoReply",
    "Pairs",
    "Ping",
    "Pong",
    "ProtocolError",
    "RawResponse",
    "RemoteProtocolError",
    "ReplyEvent",
    "Request",
    "RequestEvent",
    "Role",
    "RpcHttpRequest",
    "RpcRequest",
    "RpcResponse",
    "SERVER",
    "SPOOL_FILE_PREFIX",
    "STATS_HTTP_HEAD",
    "SignalRequest",
    "SpoolFile",
    "SpoolFileError",
    "SpoolFileName",
    "SpoolRequest",
    "State",
    "Subscription",
    "UnknownRequest",
    "VARS_MODIFIERS",
    "content_length",
    "decode_array",
    "decode_cache_udp_datagram",
    "decode_dict",
    "decode_dict_prefix",
    "decode_header",
    "decode_legion_announce",
    "decode_request_vars",
    "decode_spool_file",
    "decode_stats",
    "decode_stats_http",
    "decode_subscription",
    "decrypt_legion_datagram",
    "encode_array",
    "encode_cache_udp_datagram",
    "encode_header",
    "encode_http_head",
    "encode_legion_announce",
    "encode_packet",
    "encode_spool_file",
    "encode_spool_vars",
    "encode_stats",
    "encode_stats_http",
    "encode_subscription",
    "encode_vars",
    "escape_json",
    "http_url_decode",
    "internal_error_response",
    "last_value",
    "not_found_response",
    "parse_http_request",
    "parse_spool_file_name",
    "response_protocol",
    "rpc_http_call",
    "rpc_http_response",
    "spool_at",
    "spool_file_name",
    "spool_options",
    "str_num",
    "strverscmp",
    "subscription_hash",
    "subscription_signed_part",
    "versionsort",
]
