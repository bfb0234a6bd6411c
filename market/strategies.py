"""Strategies turn an agent's forecast and state into the orders it signs for an interval.

A strategy is any object with `orders(ctx: StrategyContext) -> list[OrderIntent]`. The built-in
ones, one per role, are what the kit's agents run; a scenario (or a node's config) may name
another by import path, `"package.module:Name"`, to try a trading idea. A class named so is
instantiated without arguments; any other object is used as it is.

Prices are limit prices in milli-cents per kWh. The defaults are chosen so that every mechanism
behaves sensibly with the charter's tariffs: generators sell no lower than the feed-in tariff
(what the utility would pay), consumers pay up to the community price, batteries buy below and
sell at the community price, so one battery never trades with another.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ledger.charter import GridRules
from market.battery import battery_limits
from market.participants import Participant

__all__ = [
    "ConsumerStrategy",
    "GeneratorStrategy",
    "OrderIntent",
    "StorageStrategy",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "default_strategy",
    "load_strategy",
]


class StrategyError(ValueError):
    """A strategy import path that does not name a usable strategy."""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    side: str  # "offer" | "bid"
    energy_wh: int
    price: int


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """What an agent knows when it decides its orders for `interval`."""

    participant: Participant
    interval: int
    demand_wh: int  # forecast consumption in the interval (consumers)
    generation_wh: int  # forecast production in the interval (generators)
    soc_wh: int  # state of charge at the start of the interval (storage)
    rules: GridRules
    interval_ms: int = 3_600_000  # the duration the interval's energy stands for


@runtime_checkable
class Strategy(Protocol):
    def orders(self, ctx: StrategyContext) -> list[OrderIntent]: ...


class ConsumerStrategy:
    """Bid the forecast demand at the community price."""

    def orders(self, ctx: StrategyContext) -> list[OrderIntent]:
        if ctx.demand_wh <= 0:
            return []
        return [OrderIntent("bid", ctx.demand_wh, ctx.rules.community_price)]


class GeneratorStrategy:
    """Offer the forecast output at the feed-in tariff."""

    def orders(self, ctx: StrategyContext) -> list[OrderIntent]:
        if ctx.generation_wh <= 0:
            return []
        return [OrderIntent("offer", ctx.generation_wh, ctx.rules.feed_in)]


class StorageStrategy:
    """Offer what the battery can discharge, bid what it can absorb, within capacity and power.

    It sells at the community price and buys at the midpoint of feed-in and community price.
    """

    def orders(self, ctx: StrategyContext) -> list[OrderIntent]:
        discharge, charge = battery_limits(ctx.participant, ctx.soc_wh, ctx.interval_ms)
        rules = ctx.rules
        intents = []
        if discharge > 0:
            intents.append(OrderIntent("offer", discharge, rules.community_price))
        if charge > 0:
            intents.append(OrderIntent("bid", charge, (rules.feed_in + rules.community_price) // 2))
        return intents


_DEFAULTS = {
    "consumer": ConsumerStrategy,
    "generator": GeneratorStrategy,
    "storage": StorageStrategy,
}


def default_strategy(role: str) -> Strategy:
    try:
        return _DEFAULTS[role]()
    except KeyError:
        raise StrategyError(f"no default strategy for role {role!r}") from None


def load_strategy(path: str) -> Strategy:
    """Import the strategy named `"package.module:Name"` (Name may be dotted)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise StrategyError(f"strategy {path!r} must look like 'package.module:Name'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"strategy {path!r}: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise StrategyError(f"strategy {path!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:
            raise StrategyError(
                f"strategy {path!r}: cannot be created without arguments: {exc}"
            ) from None
    if not callable(getattr(obj, "orders", None)):
        raise StrategyError(f"strategy {path!r} has no orders(ctx) method")
    return obj
