"""Notifications: ``[[notify]]`` targets told once when a condition starts and once when it ends.

conditions.py  pure: a snapshot of the state store + ``now`` + thresholds -> conditions,
               and the messages (webhook JSON, Slack text)
snapshot.py    reads that snapshot from the state store
send.py        posts a message (httpx, short timeout, bounded retry); URLs never logged
evaluate.py    one evaluation: snapshot, per target what started/ended, send, remember
"""
