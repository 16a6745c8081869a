"""Running one fit across processes with torch.distributed (torchrun), and reading sharded input."""

from tabsynth.distributed.runtime import Runtime, current, rank_device
from tabsynth.distributed.shards import count_rows, read_shard, shard_range

__all__ = ["Runtime", "count_rows", "current", "rank_device", "read_shard", "shard_range"]
