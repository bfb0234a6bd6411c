"""Built-in strategies per role, battery limits in integer Wh, pluggable strategies."""

import sys

import pytest

from ledger.charter import GridRules
from market.participants import Participant
from market.strategies import (
    ConsumerStrategy,
    GeneratorStrategy,
    OrderIntent,
    StorageStrategy,
    Strategy,
    StrategyContext,
    StrategyError,
    default_strategy,
    load_strategy,
)

RULES = GridRules()
HOUR = 3_600_000
HOME = Participant(b"\x01" * 32, "Home", "consumer", "h")
SOLAR = Participant(b"\x02" * 32, "Solar", "generator", "h")
BATTERY = Participant(b"\x03" * 32, "Battery", "storage", "h", 4000, 2000)


def ctx(who, demand=0, generation=0, soc=0, interval_ms=HOUR):
    return StrategyContext(who, 5, demand, generation, soc, RULES, interval_ms)


def test_consumer_bids_its_demand_and_generator_offers_its_output():
    assert ConsumerStrategy().orders(ctx(HOME, demand=500)) == [OrderIntent("bid", 500, 15000)]
    assert ConsumerStrategy().orders(ctx(HOME, demand=0)) == []
    assert GeneratorStrategy().orders(ctx(SOLAR, generation=900)) == [
        OrderIntent("offer", 900, 5000)
    ]
    assert GeneratorStrategy().orders(ctx(SOLAR, generation=0)) == []


@pytest.mark.parametrize(
    ("soc", "interval_ms", "offer", "bid"),
    [
        (0, HOUR, None, 2000),  # empty: nothing to offer, power limits the charge
        (500, HOUR, 500, 2000),  # offers all it holds (demand equal to it is served in full)
        (3000, HOUR, 2000, 1000),  # power limits discharge, free capacity limits charge
        (4000, HOUR, 2000, None),  # full: bids nothing
        (3000, 900_000, 500, 500),  # 15 min at 2000 W moves 500 Wh
        (3000, 10_000, 5, 5),  # 10 s at 2000 W is 5.55 Wh: rounded down to 5
    ],
)
def test_storage_offers_what_it_can_discharge_and_bids_what_it_can_absorb(
    soc, interval_ms, offer, bid
):
    got = StorageStrategy().orders(ctx(BATTERY, soc=soc, interval_ms=interval_ms))
    expected = []
    if offer:
        expected.append(OrderIntent("offer", offer, 15000))
    if bid:
        expected.append(OrderIntent("bid", bid, 10000))
    assert got == expected


def test_storage_buys_below_what_it_sells_for():
    intents = {i.side: i.price for i in StorageStrategy().orders(ctx(BATTERY, soc=1000))}
    assert RULES.feed_in < intents["bid"] < intents["offer"] <= RULES.community_price


def test_defaults_per_role():
    assert isinstance(default_strategy("consumer"), ConsumerStrategy)
    assert isinstance(default_strategy("generator"), GeneratorStrategy)
    assert isinstance(default_strategy("storage"), StorageStrategy)
    with pytest.raises(StrategyError):
        default_strategy("prosumer")


class Frugal:
    """A strategy defined right here: bid half the demand at the feed-in tariff."""

    def orders(self, ctx):
        return [OrderIntent("bid", ctx.demand_wh // 2, ctx.rules.feed_in)]


FRUGAL_INSTANCE = Frugal()


class NeedsArgs:
    def __init__(self, x):
        self.x = x

    def orders(self, ctx):
        return []


NOT_A_STRATEGY = 42


def test_load_strategy_by_import_path():
    assert isinstance(load_strategy("market.strategies:StorageStrategy"), StorageStrategy)
    module = sys.modules[__name__].__name__
    loaded = load_strategy(f"{module}:Frugal")
    assert isinstance(loaded, Frugal) and isinstance(loaded, Strategy)
    assert load_strategy(f"{module}:FRUGAL_INSTANCE") is FRUGAL_INSTANCE
    assert loaded.orders(ctx(HOME, demand=501)) == [OrderIntent("bid", 250, 5000)]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("market.strategies", "must look like 'package.module:Name'"),
        (":Name", "must look like"),
        ("no_such_package.mod:Name", "cannot import 'no_such_package.mod'"),
        ("market.strategies:Nothing", "has no 'Nothing'"),
        (f"{__name__}:NOT_A_STRATEGY", r"has no orders\(ctx\) method"),
        (f"{__name__}:NeedsArgs", "cannot be created without arguments"),
    ],
)
def test_load_strategy_errors_are_clear(path, message):
    with pytest.raises(StrategyError, match=message):
        load_strategy(path)
