"""Hostile app: it reads its standard input (a prompt left in, a debugger's input())."""
import sys


def application(env, start_response):
    data = sys.stdin.read()
    try:
        line = input("> ")
    except EOFError:
        line = "EOFError"
    start_response("200 OK", [])
    return [repr((data, line)).encode()]
