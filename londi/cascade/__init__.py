"""Online cascade learning (Nie et al., ICML 2024): streams, levels, deferral heads, the online loop,
and the per-state `cascade` switcher (`londi.cascade.router`)."""

from londi.cascade.cascade import CascadeStats, ItemResult, OnlineCascade
from londi.cascade.deferral import DeferralHead, ForcedDeferral, cascade_loss, deferral_loss, should_defer
from londi.cascade.levels import GivenLabelsLevel, HashedLinearLevel, HFClassifierLevel, Level, PolicyLevel
from londi.cascade.streams import (
    Stream,
    StreamItem,
    read_csv,
    read_hf_dataset,
    read_jsonl,
    synthetic_drifting,
)

__all__ = [
    "CascadeStats",
    "DeferralHead",
    "ForcedDeferral",
    "GivenLabelsLevel",
    "HFClassifierLevel",
    "HashedLinearLevel",
    "ItemResult",
    "Level",
    "OnlineCascade",
    "PolicyLevel",
    "Stream",
    "StreamItem",
    "cascade_loss",
    "deferral_loss",
    "read_csv",
    "read_hf_dataset",
    "read_jsonl",
    "should_defer",
    "synthetic_drifting",
]
