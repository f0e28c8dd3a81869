"""The mailer mule: one e-mail a second, counted in the cache."""

import time

import uwsgi

while True:
    mail = uwsgi.mule_get_msg()
    time.sleep(1)  # the SMTP round trip
    uwsgi.cache_inc("sent", 1)
