"""The demo's day: each home's demand follows the documented household profile
(docs/market.md), its daily energy the kit's."""

from market.scenario import DAY_PROFILE_TENTHS, day_scenario, default_scenario


def test_homes_follow_the_profile_with_the_kits_daily_energy():
    kit = {a.name: a for a in default_scenario().agents}
    day = {a.name: a for a in day_scenario().agents}
    assert sum(DAY_PROFILE_TENTHS) == 240 and len(DAY_PROFILE_TENTHS) == 24
    for name, spec in day.items():
        if spec.role != "consumer":
            assert spec == kit[name]
            continue
        hours = [spec.expected(h)[0] for h in range(24)]
        assert sum(hours) == 24 * kit[name].consumption_wh
        assert min(hours) < kit[name].consumption_wh < max(hours)
        assert hours.index(max(hours)) == 19 and hours[7] > hours[10] > hours[3]
    assert day["Home 1"].expected(3)[0] == 250 and day["Home 1"].expected(19)[0] == 850
