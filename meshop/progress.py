"""The one progress bar meshop shows on stderr for long work (training, rollouts, animations)."""

from __future__ import annotations


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, *, initial: int = 0, leave: bool = False):
    """A tqdm bar over ``total`` units (disabled: a silent stand-in with the same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, leave=leave,
                dynamic_ncols=True)
