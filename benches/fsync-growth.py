#!/usr/bin/env python3
"""What an fdatasync costs when the file grows with each write, against overwriting in place.

sled 0.34 appends its log at the end of its file, so each durable commit of sessiond's also
changes the file's size; PostgreSQL's WAL segments are preallocated. This measures the
difference on the disk under DIR (default: the current directory), 4 KiB writes:

  overwrite     one block rewritten in place, then fdatasync (the fsync probe's pattern)
  append        each block past the end of the file, then fdatasync
  append_sfr    the same with sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER) first (sled's flush)
  prealloc      each block into a zero-filled, already-synced region, then fdatasync
  prealloc_sfr  the same with sync_file_range first
  fallocate     each block into a region posix_fallocate reserved (unwritten extents, the
                file's size already set), then fdatasync

    python3 benches/fsync-growth.py [DIR] [WRITES]
"""
import ctypes
import os
import sys
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
SFR_WAIT_WRITE_WAIT = 1 | 2 | 4


def run(d, mode, n):
    path = os.path.join(d, f".fsync-growth-{os.getpid()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if mode.startswith("prealloc"):
            os.pwrite(fd, b"\0" * ((n + 1) * 4096), 0)
            os.fsync(fd)
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, (n + 1) * 4096)
            os.fsync(fd)
        block = b"\x5a" * 4096
        took = []
        for i in range(n):
            off = 0 if mode == "overwrite" else i * 4096
            t0 = time.perf_counter()
            os.pwrite(fd, block, off)
            if mode.endswith("sfr"):
                libc.sync_file_range(fd, ctypes.c_int64(off), ctypes.c_int64(4096),
                                     SFR_WAIT_WRITE_WAIT)
            os.fdatasync(fd)
            took.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    print(f"{mode:13s} {n / sum(took):8,.0f}/s  p50 {took[n // 2] * 1e6:6.0f} µs"
          f"  p99 {took[int(n * 0.99)] * 1e6:6.0f} µs")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    for _ in range(2):  # interleaved repetitions: the disk's speed drifts
        for mode in ["overwrite", "append", "append_sfr", "prealloc", "prealloc_sfr", "fallocate"]:
            run(d, mode, n)


if __name__ == "__main__":
    main()
