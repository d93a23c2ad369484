"""The credit policy file: the shipped default, and a clear error (line and key) for every kind of mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.gateway.conftest import DEFAULT_POLICY_TEXT
from xinyong_gateway.credit.policy import AtLeast, PolicyError, default_policy, load_policy, parse_policy


def test_default_policy_loads_with_its_version_and_publicity_periods() -> None:
    policy = default_policy()
    assert policy.version == "lyg-2026.4"
    assert policy.publicity.of("minor") == timedelta(days=90)
    assert policy.publicity.of("general") == timedelta(days=365)
    assert policy.publicity.of("serious") == timedelta(days=1095)
    assert policy.measures.black == ["refuse_onboarding", "close_store", "freeze_account", "public_exposure"]
    assert policy.measures.watch == ["search_demotion", "increased_inspection", "risk_warning"]
    assert policy.measures.red == ["search_boost", "traffic_priority", "green_channel"]
    assert policy.red.registered_for == timedelta(days=180)
    assert policy.red.clean_for == timedelta(days=365)


def test_default_rules_hold_the_thresholds_of_the_published_measures() -> None:
    rules = {rule.id: rule for rule in default_policy().rules}
    assert rules["counterfeit-listing"].where == {"confirmed": True, "kind": "counterfeit"}
    assert rules["mass-fake-orders"].where["order_count"] == AtLeast(at_least=100)
    assert (rules["repeated-manipulation"].count, rules["repeated-manipulation"].within) == (3, timedelta(days=365))
    assert (rules["empty-parcels-black"].count, rules["empty-parcels-black"].within) == (10, timedelta(days=90))
    assert (rules["empty-parcels-watch"].count, rules["empty-parcels-watch"].within) == (3, timedelta(days=90))
    assert (rules["upheld-complaints"].count, rules["upheld-complaints"].within) == (5, timedelta(days=90))
    ratio = rules["courier-loss-rate"].ratio
    assert ratio is not None
    assert (ratio.of, ratio.at_least, ratio.min_total) == ({"status": ["lost", "damaged"]}, 0.02, 200)
    assert rules["courier-loss-rate"].subject_field == "courier"
    assert rules["empty-parcels-black"].subject_field == "merchant"
    assert rules["serious-penalty"].subject_field == "subject"
    assert {rule.list for rule in rules.values()} == {"black", "watch", "none"}


def test_rules_are_grouped_by_event_in_file_order() -> None:
    grouped = default_policy().rules_by_event
    assert [rule.id for rule in grouped["penalty.imposed"]] == ["serious-penalty", "general-penalty", "minor-penalty"]


def _replace(old: str, new: str) -> str:
    assert old in DEFAULT_POLICY_TEXT, old
    return DEFAULT_POLICY_TEXT.replace(old, new, 1)


def _line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if fragment in line)


def _error(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.toml")
    return str(caught.value)


def test_toml_syntax_error_names_the_file_and_line() -> None:
    message = _error(_replace('minor = "90d"', 'minor = "90d'))
    assert message.startswith("policy.toml: not valid TOML")
    assert "line" in message


def test_unknown_key_in_a_rule_names_its_line_and_path() -> None:
    text = _replace('where = { confirmed = true, kind = "counterfeit" }', "whre = { confirmed = true }")
    message = _error(text)
    assert f"line {_line_of(text, 'whre =')}, rule[0].whre: unknown key" in message


def test_unknown_event_type_is_named_with_its_line() -> None:
    text = _replace('event = "penalty.imposed"', 'event = "penalty.imposd"')
    message = _error(text)
    assert f"line {_line_of(text, 'penalty.imposd')}, rule[1].event: unknown event type 'penalty.imposd'" in message


def test_condition_on_a_field_the_event_does_not_have_is_refused() -> None:
    message = _error(_replace('where = { severity = "serious" }', 'where = { severty = "serious" }'))
    assert "rule[1]" in message
    assert "penalty.imposed has no field 'severty'" in message


def test_condition_with_an_impossible_value_is_refused() -> None:
    message = _error(_replace('kind = "counterfeit" }', 'kind = "counterfit" }'))
    assert "'counterfit' is not a possible value of listing.violation 'kind'" in message


def test_at_least_on_a_field_that_is_not_a_number_is_refused() -> None:
    message = _error(_replace('where = { severity = "serious" }', "where = { severity = { at_least = 2 } }"))
    assert "'severity' is not a number" in message


def test_event_with_two_subjects_needs_the_subject_named() -> None:
    message = _error(_replace('subject = "courier"\n', ""))
    assert "delivery.recorded has subjects courier, merchant: say which with `subject`" in message


def test_count_without_a_window_is_refused() -> None:
    message = _error(_replace('count = 3\nwithin = "365d"', "count = 3"))
    assert "needs a window: `within`" in message


def test_publicity_outside_legal_bounds_names_the_table() -> None:
    text = _replace('serious = "1095d"', 'serious = "1500d"')
    message = _error(text)
    assert f"line {_line_of(text, '[publicity]')}, publicity: serious publicity must be between 365 and 1096" in message


def test_duration_must_be_whole_days() -> None:
    text = _replace('minor = "90d"', 'minor = "3 months"')
    message = _error(text)
    assert f"line {_line_of(text, '3 months')}, publicity.minor:" in message
    assert 'a duration is a whole number of days, such as "90d"' in message


def test_grade_thresholds_must_fall_from_a_to_c() -> None:
    message = _error(_replace("grades = { A = 90, B = 75, C = 60 }", "grades = { A = 70, B = 75, C = 60 }"))
    assert "score.grades: grade thresholds must fall from A to C" in message


def test_duplicate_rule_ids_are_refused() -> None:
    message = _error(_replace('id = "serious-penalty"', 'id = "counterfeit-listing"'))
    assert "two rules have the id 'counterfeit-listing'" in message


def test_several_problems_are_reported_together() -> None:
    text = _replace('reason = "PENALTY_SERIOUS"', 'reason = "penalty serious"').replace(
        'list = "watch"', 'list = "grey"', 1
    )
    message = _error(text)
    assert message.count("policy.toml: line") >= 2


def test_load_policy_reads_a_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "lyg-2026.3"'), encoding="utf-8")
    assert load_policy(path).version == "lyg-2026.3"
    with pytest.raises(PolicyError, match="Cannot read the policy file"):
        load_policy(tmp_path / "missing.toml")


def test_invalid_list_name_points_at_the_list_key() -> None:
    text = _replace('list = "watch"', 'list = "grey"')
    message = _error(text)
    assert f"line {_line_of(text, 'grey')}, rule[5].list: Input should be 'black', 'watch' or 'none'" in message


# -- what the mutation tests of credit/policy.py asked for (`make mutation`) ------------------------------------------


def test_a_problem_reads_file_line_key_and_message_and_nothing_else() -> None:
    text = _replace('minor = "90d"', 'minor = "3 months"')
    assert _error(text).splitlines() == [
        f"policy.toml: line {_line_of(text, '3 months')}, publicity.minor: a duration is a whole number of days,"
        ' such as "90d"'
    ]


def test_a_problem_of_the_whole_file_has_no_line_and_says_top_level() -> None:
    text = _replace('id = "serious-penalty"', 'id = "counterfeit-listing"')
    assert _error(text).splitlines() == ["policy.toml: top level: two rules have the id 'counterfeit-listing'"]


def test_a_policy_without_a_source_name_is_called_policy_in_angle_brackets() -> None:
    with pytest.raises(PolicyError, match=r"^<policy>: line \d+, rule\[0\]\.whre: unknown key$"):
        parse_policy(_replace('where = { confirmed = true, kind = "counterfeit" }', "whre = { confirmed = true }"))


def _bad_reasons(count: int) -> str:
    """The default policy with the reason codes of its first ``count`` rules made invalid."""
    lines = DEFAULT_POLICY_TEXT.splitlines(keepends=True)
    made = 0
    for n, line in enumerate(lines):
        if line.startswith('reason = "') and made < count:
            lines[n], made = line.replace('reason = "', 'reason = "bad ', 1), made + 1
    return "".join(lines)


def test_the_first_ten_problems_are_listed_and_the_rest_counted() -> None:
    rules = DEFAULT_POLICY_TEXT.count("[[rule]]")
    assert rules > 11
    lines = _error(_bad_reasons(rules)).splitlines()
    assert all(line.startswith("policy.toml: line ") and line.endswith("'") for line in lines[:10]), lines
    assert [line.split(", ")[1].split(":")[0] for line in lines[:10]] == [f"rule[{n}].reason" for n in range(10)]
    assert lines[10:] == [f"(and {rules - 10} more)"]
    assert len(_error(_bad_reasons(10)).splitlines()) == 10
    assert _error(_bad_reasons(11)).splitlines()[10:] == ["(and 1 more)"]


def test_a_missing_key_points_at_its_table_header_also_one_with_a_comment() -> None:
    first_rule = '[[rule]]\nid = "counterfeit-listing"\nreason = "LISTING_COUNTERFEIT"\n'
    text = _replace(first_rule, '[[rule]]# counterfeits [sic]\nid = "counterfeit-listing"\n')
    header = _line_of(text, "# counterfeits [sic]")
    assert f"policy.toml: line {header}, rule[0].reason: Field required" in _error(text).splitlines()
    text = _replace('clean_for = "365d"', "")
    assert f"policy.toml: line {_line_of(text, '[red]')}, red.clean_for: Field required" in _error(text).splitlines()


_PUBLICITY_TABLE = (
    "[publicity]           # how long a record is effective, by severity\n"
    'minor = "90d"         # up to 3 months\n'
    'general = "365d"      # 3 months to 1 year\n'
    'serious = "1095d"     # 1 to 3 years\n'
)


def test_keys_of_a_dotted_table_and_dotted_or_quoted_keys_have_their_lines() -> None:
    weights = "weights = { minor = 5, general = 15, serious = 40 }\n"
    text = _replace(weights, "").replace("[measures]", "[score.weights]\nminor = 5\nserious = 400\n\n[measures]", 1)
    assert f"line {_line_of(text, 'serious = 400')}, score.weights.serious:" in _error(text)
    dotted = 'publicity.minor="3 months"\npublicity.general = "365d"\npublicity.serious = "1095d"\n'
    text = _replace(_PUBLICITY_TABLE, "").replace('version = "lyg-2026.4"\n', 'version = "lyg-2026.4"\n' + dotted, 1)
    assert f"line {_line_of(text, 'publicity.minor=')}, publicity.minor:" in _error(text)
    text = _replace('version = "lyg-2026.4"', '"version" = "has spaces"')
    assert f"line {_line_of(text, 'has spaces')}, version:" in _error(text)


def test_every_condition_is_checked_also_after_an_at_least() -> None:
    message = _error(
        _replace(
            'where = { confirmed = true, kind = "fake_order", order_count = { at_least = 100 } }',
            'where = { order_count = { at_least = 100 }, kind = "fake_ordr" }',
        )
    )
    assert "'fake_ordr' is not a possible value of review.manipulation_detected 'kind'" in message


def test_a_condition_value_is_checked_strictly_and_with_the_fields_constraints() -> None:
    assert "'true' is not a possible value of listing.violation 'confirmed'" in _error(
        _replace('where = { confirmed = true, kind = "counterfeit" }', 'where = { confirmed = "true" }')
    )
    exact = 'where = { confirmed = true, kind = "fake_order", order_count = { at_least = 100 } }'
    assert "-1 is not a possible value of review.manipulation_detected 'order_count'" in _error(
        _replace(exact, "where = { order_count = -1 }")
    )
    rules = {rule.id: rule for rule in parse_policy(_replace(exact, "where = { order_count = 12 }")).rules}
    assert rules["mass-fake-orders"].where == {"order_count": 12}


def test_a_condition_on_an_unknown_field_lists_the_fields_and_one_on_a_subject_says_how_to_choose_it() -> None:
    message = _error(_replace('where = { severity = "serious" }', 'where = { severty = "serious" }'))
    assert (
        "where: penalty.imposed has no field 'severty' (fields: decision_no, authority, severity, violation,"
        " decided_at)" in message
    )
    message = _error(_replace('where = { severity = "serious" }', 'where = { subject = "serious" }'))
    assert "where: 'subject' is a subject; choose the subject with `subject = 'subject'`" in message


def test_every_rule_needs_a_chinese_label_for_the_public_site() -> None:
    text = _replace('label = "销售假冒商品"\n', "")
    assert "policy.toml: line " in _error(text) and "rule[0].label: Field required" in _error(text)
    assert "rule[0].label" in _error(_replace('label = "销售假冒商品"', 'label = " "'))
    assert parse_policy(DEFAULT_POLICY_TEXT).rules_by_id["serious-penalty"].label == "受到严重行政处罚"


def test_the_disclosure_table_names_the_lists_persons_appear_on() -> None:
    assert parse_policy(DEFAULT_POLICY_TEXT).disclosure.persons == ["black"]
    assert parse_policy(_replace('persons = ["black"]', "persons = []")).disclosure.persons == []
    assert "disclosure.persons[0]" in _error(_replace('persons = ["black"]', 'persons = ["none"]'))


# -- intermediaries (涉审中介机构): tiered supervision as data ------------------------------------------------------


def test_the_shipped_tiers_give_the_best_agencies_a_green_channel_and_ban_the_worst_practitioners() -> None:
    tiers = default_policy().intermediary
    assert tiers is not None
    assert tiers.list_tier == {"black": "D", "watch": "C"}
    assert tiers.agency.of("A") == ("green_channel", "procurement_preference")
    assert tiers.agency.of("D") == ("spot_check_increase", "access_restriction")
    assert tiers.practitioner.of("D") == ("practice_ban",)
    rules = default_policy().rules_by_id
    assert (rules["practitioner-false-report"].subject_field, rules["practitioner-false-report"].list) == (
        "practitioners",
        "black",
    )


def test_a_violation_has_two_subjects_so_its_rules_name_one() -> None:
    text = _replace('event = "intermediary.violation"\nsubject = "agency"\n', 'event = "intermediary.violation"\n')
    assert "intermediary.violation has subjects agency, practitioners: say which with `subject`" in _error(text)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'list_tier = { black = "D", watch = "C" }',
            'list_tier = { black = "E", watch = "C" }',
            "intermediary.list_tier.black",
        ),
        ('list_tier = { black = "D", watch = "C" }', 'list_tier = { red = "A" }', "intermediary.list_tier.red"),
        ('D = ["practice_ban"]', 'D = ["Practice Ban"]', "intermediary.practitioner.D[0]"),
        ('D = ["practice_ban"]\n', "", "intermediary.practitioner.D: Field required"),
    ],
)
def test_a_mistake_in_the_tiers_names_its_line_and_key(old: str, new: str, expected: str) -> None:
    assert expected in _error(_replace(old, new))


def test_a_policy_without_tiers_is_valid_and_gives_no_tier() -> None:
    start = DEFAULT_POLICY_TEXT.index("[intermediary]")
    end = DEFAULT_POLICY_TEXT.index("# -- black list")
    policy = parse_policy(DEFAULT_POLICY_TEXT[:start] + DEFAULT_POLICY_TEXT[end:], source="no-tiers.toml")
    assert policy.intermediary is None
