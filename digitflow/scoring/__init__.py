"""Batch scoring of scanned folders: every digit on every page found, read and recorded."""

# Files per shard (one task, one inference call, one commit). Each shard also costs a task
# run and its writes: on 2 cores, 84 pages took 4.1 s in shards of 8 and 3.1 s in shards
# of 16, 32 or 64; readers keep every core busy inside a shard, and smaller shards lose
# less work to a kill.
SHARD_SIZE = 16

# Digits (and lines) read with less confidence go to review, unless a batch says otherwise.
REVIEW_THRESHOLD = 0.9
