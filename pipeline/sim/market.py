"""The simulated offer market: what `POST /api/v0/bundles/` lists at a given moment.

A deterministic function of its knobs and the moment, consistent with the fleets it is
built over: their machines are among the offers (same host, place, hardware and
reliability as in the instance records), beside a seeded pool of other hosts' machines.

- A *listing* is one (machine, num_gpus) a host offers; it is listed on demand and
  interruptible alike, so `(machine_id, num_gpus, type)` is the stable key of an offer.
- Time runs in cycles per listing (6 to 48 hours, each listing on its own phase): at the
  start of a cycle the listing is rented for a while (not offered), then re-listed under a
  new offer `id` at a new price, until it is rented again. Offers appear and go away.
- A re-listed offer is priced from its host's place in the GPU model's price band, the
  model's slow trend (a sine of 9 to 21 days, +-8%) and the daily rhythm (+-4%, dearest at
  15:00 UTC) at the hour it was listed; the price stays put while it is listed. The
  interruptible `min_bid` moves every hour with demand (the same daily rhythm).
- About a quarter of the other hosts are steady datacenters: verified, reliability near
  0.999, priced in the lower third of the band and almost always listed. They are the
  persistent, cheaper offers that part of the demo fleet could move to.
- `tied_offers` extra listings, all at exactly `tied_price` (and one storage price), let a
  client's continuation by price meet more offers at one price than its `limit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pipeline.sim.catalogue import GPU_MODELS, GpuModel
from pipeline.sim.defaults import (
    DEFAULT_MARKET_MACHINES,
    DEFAULT_SEED,
    SEARCH_ALLOCATED_STORAGE,
)
from pipeline.sim.fleet import FleetModel
from pipeline.sim.hosts import HostPool, Machine
from pipeline.sim.offers import Listing, Run, offer_record
from pipeline.sim.seeded import Stream, to_epoch, unit

HOUR = 3600.0
OFFER_TYPES = ("on-demand", "bid")
MARKET_ID_OFFSET = 500_000      # market hosts and machines: ids clear of the fleets'
OFFER_BASE_ID = 10_000_000
STEADY_SHARE = 0.12
TIED_PRICE_DEFAULT = 0.25        # $/h of one tied offer
TIED_STORAGE_COST = 0.1          # $/GB/month of every tied offer
_MACHINES_PER_HOST = 2.2         # the host pool's mean


class MarketModel:
    """The offers on the market at any moment: `offers_at(t, type, allocated_storage)`."""

    def __init__(self, fleets: Sequence[FleetModel] | FleetModel = (), *,
                 seed: int | None = None, machines: int = DEFAULT_MARKET_MACHINES,
                 tied_offers: int = 0, tied_price: float = TIED_PRICE_DEFAULT,
                 tied_gpu: str = "RTX 3090", steady_share: float = STEADY_SHARE) -> None:
        fleets = [fleets] if isinstance(fleets, FleetModel) else list(fleets)
        if machines < 0 or tied_offers < 0:
            raise ValueError("machines and tied_offers must be at least 0")
        if not 0.0 <= steady_share <= 1.0:
            raise ValueError("steady_share must be within 0..1")
        self.seed = seed if seed is not None else (fleets[0].seed if fleets else DEFAULT_SEED)
        self.tied_price = tied_price
        self.pool = self._market_pool(machines, steady_share)
        self.listings = self._listings(fleets, machines, steady_share, tied_offers, tied_gpu)
        self._sample: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"MarketModel(seed={self.seed}, listings={len(self.listings)})"

    def offers_at(self, t: Any, offer_type: str = "on-demand",
                  allocated_storage: float = SEARCH_ALLOCATED_STORAGE) -> list[dict[str, Any]]:
        """Every offer listed at `t` priced for `offer_type` (`on-demand`, `bid` or
        `reserved`) at `allocated_storage` GB, in listing order."""
        te = to_epoch(t)
        hour = math.floor(te / HOUR)
        out = []
        for listing in self.listings:
            run = self.run_at(listing, hour)
            if run is not None:
                out.append(offer_record(listing, run, te, offer_type, allocated_storage,
                                        self.min_bid(listing, run, hour),
                                        self.rentable(listing, hour)))
        return out

    def sample_offer(self) -> dict[str, Any]:
        """One offer's shape (its fields and their types), for the search's field checks."""
        if self._sample is None:
            self._sample = {} if not self.listings else offer_record(
                self.listings[0], Run(0, 0.0, 1.0, 0.0), 0.0, "on-demand", 8.0, 0.5, True)
        return self._sample

    # ---- the timeline of one listing ------------------------------------------------------

    def run_at(self, listing: Listing, hour: int) -> Run | None:
        """The run of `listing` that is offered during `hour`, or None (rented or unlisted)."""
        if listing.tied:
            return Run(OFFER_BASE_ID + listing.index, 0.0, round(self.tied_price, 4),
                       (hour + 24 * 90) * HOUR)
        cycle, into = divmod(hour - listing.phase_hours, listing.cycle_hours)
        key = (self.seed, Stream.LISTING, listing.index, cycle)
        gap = 1 + int(unit(*key, 1) * max(1, listing.cycle_hours // 4))
        if listing.steady:
            length = listing.cycle_hours - gap
        elif unit(*key, 3) < 0.15:  # not listed at all this cycle
            return None
        else:
            length = max(1, round((0.3 + 0.7 * unit(*key, 2)) * (listing.cycle_hours - gap)))
        if not gap <= into < gap + length:
            return None
        start_hour = hour - into + gap
        return Run(offer_id=OFFER_BASE_ID + listing.index + len(self.listings) * (cycle + 1),
                   start=start_hour * HOUR,
                   dph_base=self._run_price(listing, cycle, start_hour),
                   end_date=(start_hour + 24 * (7 + int(113 * unit(*key, 5)))) * HOUR)

    def _run_price(self, listing: Listing, cycle: int, start_hour: int) -> float:
        gpu = listing.machine.gpu
        wobble = 0.16 * (unit(self.seed, Stream.LISTING, listing.index, cycle, 4) - 0.5)
        position = min(1.0, max(0.0, listing.position + wobble))
        per_gpu = gpu.price_low + (gpu.price_high - gpu.price_low) * position
        per_gpu *= self.trend(gpu, start_hour * HOUR) * rhythm(start_hour)
        return round(per_gpu * listing.num_gpus, 4)

    def trend(self, gpu: GpuModel, te: float) -> float:
        """The slow price trend of one GPU model at `te` (a factor around 1)."""
        gi = GPU_MODELS.index(gpu)
        period_days = 9 + 12 * unit(self.seed, Stream.TREND, gi)
        phase = unit(self.seed, Stream.TREND, gi, 1)
        return 1 + 0.08 * math.sin(2 * math.pi * (te / 86400 / period_days + phase))

    def min_bid(self, listing: Listing, run: Run, hour: int) -> float:
        """The interruptible price during `hour`: a share of the on-demand price that rises
        and falls with the day's demand."""
        if listing.tied:
            return round(self.tied_price / 2, 4)
        share = 0.42 + 0.14 * demand(hour) + 0.08 * unit(self.seed, Stream.MARKET_BID,
                                                         listing.index, hour)
        return round(run.dph_base * share, 4)

    def rentable(self, listing: Listing, hour: int) -> bool:
        """Now and then a listed offer is briefly not rentable (host maintenance)."""
        return listing.tied or unit(self.seed, Stream.MARKET, listing.index, hour, 7) >= 0.04

    # ---- building the listings ------------------------------------------------------------

    def _market_pool(self, machines: int, steady_share: float) -> HostPool:
        n_hosts = max(1, math.ceil(machines / _MACHINES_PER_HOST) + 2) if machines else 0
        pool = HostPool(self.seed, 0, Stream.MARKET, n_hosts=n_hosts, id_offset=MARKET_ID_OFFSET)
        for hi, host in enumerate(pool.hosts):
            if self._steady_host(hi, steady_share):
                pool.hosts[hi] = replace(host, flakiness=0.005, reliability_base=0.9985 + 0.001
                                         * unit(self.seed, Stream.MARKET, hi, 8))
        del pool.machines[machines:]
        return pool

    def _steady_host(self, hi: int, steady_share: float) -> bool:
        return unit(self.seed, Stream.MARKET, hi, 9) < steady_share

    def _listings(self, fleets: list[FleetModel], machines: int, steady_share: float,
                  tied_offers: int, tied_gpu: str) -> tuple[Listing, ...]:
        sources: list[tuple[Machine, HostPool, bool]] = []
        seen: set[int] = set()
        for fleet in fleets:
            for machine in fleet.machines:
                if machine.machine_id not in seen:
                    seen.add(machine.machine_id)
                    sources.append((machine, fleet.host_pool, False))
        for machine in self.pool.machines:
            sources.append((machine, self.pool,
                            self._steady_host(machine.host_index, steady_share)))
        specs: list[dict[str, Any]] = []
        for machine, pool, steady in sources:
            for num_gpus in self._sizes(machine):
                specs.append(self._spec(machine, pool, steady, num_gpus))
        specs += self._tied_specs(tied_offers, tied_gpu)
        return tuple(Listing(index=i, **spec) for i, spec in enumerate(specs))

    def _sizes(self, machine: Machine) -> list[int]:
        """The bundles a machine is offered in: the whole machine, often one GPU, now and
        then half of it."""
        sizes = [machine.max_gpus]
        if machine.max_gpus > 1 and unit(self.seed, Stream.MARKET, machine.machine_id, 1) < 0.6:
            sizes.append(1)
        if machine.max_gpus >= 4 and unit(self.seed, Stream.MARKET, machine.machine_id, 2) < 0.4:
            sizes.append(machine.max_gpus // 2)
        return sizes

    def _spec(self, machine: Machine, pool: HostPool, steady: bool,
              num_gpus: int) -> dict[str, Any]:
        gpu, mid = machine.gpu, machine.machine_id
        u = [unit(self.seed, Stream.MARKET, mid, num_gpus, k) for k in range(5)]
        own = (machine.price_per_gpu - gpu.price_low) / (gpu.price_high - gpu.price_low)
        if pool is not self.pool:  # a fleet's machine: priced as the fleet pays for it
            position, verification = own, machine.static["verification"]
        elif steady:
            position, verification = 0.25 + 0.4 * u[0], "verified"
        else:
            position = 0.15 + 0.85 * u[0]
            verification = machine.static["verification"]
            if u[1] < 0.3:  # a third of the rest lost or never had the verified mark
                verification = "deverified" if verification == "verified" else "unverified"
        disk_per_gpu = (500 + 1500 * u[2]) if steady else (40 + 500 * u[2])
        cycle = (24 + int(24 * u[3])) if steady else (6 + int(24 * u[3]))
        return {"machine": machine, "num_gpus": num_gpus, "pool": pool, "steady": steady,
                "position": position, "verification": verification,
                "disk_space": round(disk_per_gpu * num_gpus, 1), "cycle_hours": cycle,
                "phase_hours": int(cycle * u[4])}

    def _tied_specs(self, count: int, gpu_name: str) -> list[dict[str, Any]]:
        if not count:
            return []
        gpu = next((g for g in GPU_MODELS if g.name == gpu_name), None)
        if gpu is None:
            raise ValueError(f"tied_gpu {gpu_name!r} is not a simulated GPU model")
        pool = HostPool(self.seed, 0, Stream.TIED, n_hosts=count,
                        id_offset=2 * MARKET_ID_OFFSET)
        specs = []
        for hi, host in enumerate(pool.hosts):
            machine = replace(_first_machine(pool, hi), gpu=gpu, max_gpus=1,
                              storage_cost=TIED_STORAGE_COST)
            specs.append({"machine": machine, "num_gpus": 1, "pool": pool, "steady": True,
                          "position": 0.0, "verification": "verified", "disk_space": 500.0,
                          "cycle_hours": 24, "phase_hours": 0, "tied": True})
            pool.hosts[hi] = replace(host, flakiness=0.0, reliability_base=0.999)
        return specs


def _first_machine(pool: HostPool, hi: int) -> Machine:
    return next(m for m in pool.machines if m.host_index == hi)


def demand(hour: int) -> float:
    """The day's demand for GPUs at `hour` (epoch hours), 0..1, highest at 15:00 UTC."""
    return 0.5 + 0.5 * math.sin(2 * math.pi * ((hour % 24) - 9) / 24)


def rhythm(hour: int) -> float:
    """The daily price rhythm at `hour`: hosts list dearer when demand is high (+-4%)."""
    return 1 + 0.04 * (2 * demand(hour) - 1)


def listing_key(offer: dict[str, Any], offer_type: str) -> tuple[int, int, str]:
    """The stable key of an offer: `(machine_id, num_gpus, type)` (ids change on re-listing)."""
    return offer["machine_id"], offer["num_gpus"], offer_type


