"""Subjects: USCC and RIC validation, normalisation, masking, and the Subject wire model.

Every valid example here is checked by ``test_valid_examples_pass_an_independent_implementation``
against check-character code written in this file from the standards (GB 32100, GB 11714,
GB 11643 / ISO 7064 MOD 11-2), not against python-stdnum, which the code under test uses.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from stdnum import numdb
from stdnum.cn import ric as stdnum_ric

from xinyong.errors import InvalidIdentifierError, XinyongError
from xinyong.subjects import (
    CHINA_STANDARD_TIME,
    IdType,
    Subject,
    mask_id,
    mask_name,
    normalize_id,
    validate_ric,
    validate_uscc,
)

# --- independent check-character implementations (from the standards, not from stdnum) -------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_check_char(first17: str) -> str:
    """GB 32100: weights 3**i mod 31, check = (31 - sum mod 31) mod 31."""
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body: str) -> str:
    """GB 11714: weights 3 7 9 10 5 8 4 2, digits 0-9 and letters A=10 … Z=35."""
    values = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in body]
    check = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def ric_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2: weights 2**(17-i) mod 11; remainder r maps to "10X98765432"[r]."""
    remainder = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17)) % 11
    return "10X98765432"[remainder]


def make_uscc(first8: str, org_body: str) -> str:
    first17 = first8 + org_body + org_code_check_char(org_body)
    return first17 + uscc_check_char(first17)


def make_ric(first17: str) -> str:
    return first17 + ric_check_char(first17)


def independently_valid_uscc(code: str) -> bool:
    return org_code_check_char(code[8:16]) == code[16] and uscc_check_char(code[:17]) == code[17]


def independently_valid_ric(number: str) -> bool:
    return ric_check_char(number[:17]) == number[17]


TODAY = date(2025, 6, 1)

# --- examples -----------------------------------------------------------------------------------

VALID_USCC = {
    # python-stdnum's doctest example (a company registered with the SAIC, authority 9).
    "stdnum-doctest": "91110000600037341L",
    "beijing-haidian": "91110108551385082Q",
    # Registration authority N (agriculture: rural collective economic organisation), built here.
    "authority-N": "N2320102MA1XK3T782",
    # Registration authority Y (other authorities), built here.
    "authority-Y": "Y1110000500123453E",
    # Organisation-code check characters X and 0 (the two special cases of GB 11714), built here.
    "org-check-X": make_uscc("91320102", "MA1X0005"),
    "org-check-0": make_uscc("91320102", "MA1X0018"),
}

VALID_RIC = {
    # The example printed in GB 11643-1999 itself, check character X.
    "gb11643-example-X": "11010519491231002X",
    # The standard's other example, born 1880 (stdnum rejects it: its table starts in 1983).
    "gb11643-example-1880": "440524188001010014",
    # python-stdnum's doctest example.
    "stdnum-doctest": "360426199101010071",
    # Guangzhou Dongshan district (440102) was merged into Yuexiu in 2005; numbers keep the code.
    "abolished-district-dongshan": make_ric("44010219750615123"),
    # 420109 is not in stdnum's region table at all (verified below); the number is still valid.
    "region-code-missing-from-stdnum-table": make_ric("42010919800101001"),
    # A leap day.
    "born-on-leap-day": make_ric("32010220000229002"),
    # Born "today" is not in the future.
    "born-today": make_ric("32010220250601003"),
}


def test_org_code_check_examples_cover_x_and_zero() -> None:
    """The org-check-X and org-check-0 examples really exercise GB 11714's special cases."""
    assert VALID_USCC["org-check-X"][16] == "X"
    assert VALID_USCC["org-check-0"][16] == "0"


@pytest.mark.parametrize(
    ("kind", "identifier"),
    [("uscc", c) for c in VALID_USCC.values()] + [("ric", n) for n in VALID_RIC.values()],
    ids=[f"uscc-{k}" for k in VALID_USCC] + [f"ric-{k}" for k in VALID_RIC],
)
def test_valid_examples_pass_an_independent_implementation(kind: str, identifier: str) -> None:
    """Every example used as "valid" has correct check characters by this file's own arithmetic."""
    if kind == "uscc":
        assert independently_valid_uscc(identifier)
    else:
        assert independently_valid_ric(identifier)


@pytest.mark.parametrize("code", list(VALID_USCC.values()), ids=list(VALID_USCC))
def test_validate_uscc_accepts_valid_codes(code: str) -> None:
    """Valid codes pass, including letter registration authorities (N, Y) stdnum's validate rejects."""
    assert validate_uscc(code) == code


@pytest.mark.parametrize("number", list(VALID_RIC.values()), ids=list(VALID_RIC))
def test_validate_ric_accepts_valid_numbers(number: str) -> None:
    """Valid numbers pass, including ones whose region no longer exists or is unknown to stdnum."""
    assert validate_ric(number, today=TODAY) == number


def test_region_code_example_is_absent_from_stdnum_table() -> None:
    """420109 has no county entry in stdnum's loc.dat, so a table check would reject a valid number."""
    properties = [props for _, props in numdb.get("cn/loc").info("420109")]
    assert not any("county" in props for props in properties)


def test_abolished_district_number_is_rejected_by_stdnum_but_accepted_here() -> None:
    """stdnum's table check refuses a Dongshan (440102) number of someone born before 1983; we do not."""
    number = VALID_RIC["abolished-district-dongshan"]
    assert not stdnum_ric.is_valid(number)
    assert validate_ric(number, today=TODAY) == number


BAD_USCC_CHECK = VALID_USCC["beijing-haidian"][:17] + "R"
# Only the embedded organisation code's check (17th) is wrong: the final mod-31 check is recomputed.
_WRONG_ORG = VALID_USCC["beijing-haidian"][:16] + "3"
BAD_ORG_CHECK = _WRONG_ORG + uscc_check_char(_WRONG_ORG)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param(BAD_USCC_CHECK, "USCC check character is wrong", id="wrong-check-character"),
        pytest.param(BAD_ORG_CHECK, "USCC organisation code check character is wrong", id="wrong-org-check"),
        *(
            pytest.param(
                "9111010855138508" + letter + "Q",
                "USCC may only contain digits and upper-case letters other than I, O, S, V and Z",
                id=f"forbidden-letter-{letter}",
            )
            for letter in "IOSVZ"
        ),
        pytest.param("91110108551385082", "USCC must be 18 characters long", id="17-characters"),
        pytest.param("91110108551385082QQ", "USCC must be 18 characters long", id="19-characters"),
        pytest.param("", "USCC must be 18 characters long", id="empty"),
        pytest.param(
            "\uff191110108551385082Q",
            "USCC may only contain digits and upper-case letters other than I, O, S, V and Z",
            id="full-width-digit",
        ),
    ],
)
def test_validate_uscc_rejects_invalid_codes_without_repeating_them(code: str, message: str) -> None:
    """Each failure mode has its own message, and no message contains the code."""
    with pytest.raises(InvalidIdentifierError) as excinfo:
        validate_uscc(code)
    assert str(excinfo.value) == message
    if code:
        assert code not in str(excinfo.value)


def test_bad_org_check_example_has_a_correct_final_check() -> None:
    """The wrong-org-check example is wrong only in the 17th character, not in the 18th."""
    assert uscc_check_char(BAD_ORG_CHECK[:17]) == BAD_ORG_CHECK[17]
    assert org_code_check_char(BAD_ORG_CHECK[8:16]) != BAD_ORG_CHECK[16]


GOOD_RIC = VALID_RIC["stdnum-doctest"]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        pytest.param(GOOD_RIC[:17] + "2", "RIC check digit is wrong", id="wrong-check-digit"),
        pytest.param(make_ric("32010219900230123"), "RIC birth date is not a real date", id="february-30"),
        pytest.param(make_ric("32010219991301123"), "RIC birth date is not a real date", id="month-13"),
        pytest.param(make_ric("32010220010229123"), "RIC birth date is not a real date", id="feb-29-non-leap"),
        pytest.param(make_ric("32010220250602123"), "RIC birth date is in the future", id="born-tomorrow"),
        pytest.param(GOOD_RIC[:17], "RIC must be 18 characters long", id="17-characters"),
        pytest.param(GOOD_RIC + "1", "RIC must be 18 characters long", id="19-characters"),
        pytest.param(
            "36042619910101007A", "RIC must be 17 digits followed by a digit or X", id="letter-check-character"
        ),
        pytest.param("3604261991010100X1", "RIC must be 17 digits followed by a digit or X", id="x-not-last"),
        pytest.param(
            "\uff1360426199101010071", "RIC must be 17 digits followed by a digit or X", id="full-width-digit"
        ),
    ],
)
def test_validate_ric_rejects_invalid_numbers_without_repeating_them(number: str, message: str) -> None:
    """Each failure mode has its own message, and no message contains the number."""
    with pytest.raises(InvalidIdentifierError) as excinfo:
        validate_ric(number, today=TODAY)
    assert str(excinfo.value) == message
    assert number[:14] not in str(excinfo.value)


def test_validate_ric_accepts_lower_case_x_after_normalisation() -> None:
    """A lower-case check character x is the same number as X."""
    assert validate_ric("11010519491231002x", today=TODAY) == "11010519491231002X"


def test_validate_ric_defaults_today_to_china_standard_time() -> None:
    """Without ``today``, a birth date after today's date in UTC+8 is in the future."""
    tomorrow_in_china = datetime.now(CHINA_STANDARD_TIME).date() + timedelta(days=1)
    number = make_ric("320102" + tomorrow_in_china.strftime("%Y%m%d") + "123")
    with pytest.raises(InvalidIdentifierError, match="RIC birth date is in the future"):
        validate_ric(number)
    assert validate_ric(VALID_RIC["gb11643-example-X"]) == VALID_RIC["gb11643-example-X"]


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        pytest.param(" 9111 0108 5513 8508 2q ", "91110108551385082Q", id="spaces-and-lower-case"),
        pytest.param("320102\t19900101\n123x", "32010219900101123X", id="tabs-and-newlines"),
        pytest.param("320102\u300019900101123X", "32010219900101123X", id="ideographic-space"),
        pytest.param("", "", id="empty"),
    ],
)
def test_normalize_id_strips_all_whitespace_and_upper_cases(raw: str, normalised: str) -> None:
    """Whitespace anywhere (also inner and full-width) is removed, letters are upper-cased."""
    assert normalize_id(raw) == normalised


def test_validators_normalise_spaced_input() -> None:
    """Spaces inside an identifier do not make it invalid; the normalised form is returned."""
    assert validate_uscc("9111 0108 5513 8508 2q") == "91110108551385082Q"
    assert validate_ric("110105 19491231 002x", today=TODAY) == "11010519491231002X"


def test_invalid_identifier_error_is_a_value_error_of_the_sdk_tree() -> None:
    """Callers can catch it as ValueError or as XinyongError."""
    assert issubclass(InvalidIdentifierError, ValueError)
    assert issubclass(InvalidIdentifierError, XinyongError)


# --- property-based ------------------------------------------------------------------------------

uscc_chars = st.sampled_from(USCC_ALPHABET)
valid_usccs = st.builds(
    make_uscc,
    st.text(uscc_chars, min_size=8, max_size=8),
    st.text(uscc_chars, min_size=8, max_size=8),
)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
valid_rics = st.builds(
    lambda region, born, sequence: make_ric(region + born.strftime("%Y%m%d") + sequence),
    st.text(st.sampled_from("0123456789"), min_size=6, max_size=6),
    birth_dates,
    st.text(st.sampled_from("0123456789"), min_size=3, max_size=3),
)
# Replacement characters: everything a normalised identifier could contain, plus letters it must not.
replacement_chars = st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@given(valid_usccs)
def test_generated_valid_uscc_always_validates(code: str) -> None:
    """Any code with correct GB 11714 and GB 32100 check characters is accepted."""
    assert validate_uscc(code) == code


@given(valid_rics)
def test_generated_valid_ric_always_validates(number: str) -> None:
    """Any number with a real past birth date and a correct check character is accepted."""
    assert validate_ric(number, today=TODAY) == number


@given(valid_usccs, st.integers(min_value=0, max_value=17), replacement_chars)
def test_any_single_character_change_to_a_valid_uscc_is_rejected(code: str, position: int, replacement: str) -> None:
    """Mod 31 with weights coprime to 31 catches every single substitution, check character included."""
    if code[position] == replacement:
        replacement = USCC_ALPHABET[(USCC_ALPHABET.index(code[position]) + 1) % 31]
    changed = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(InvalidIdentifierError) as excinfo:
        validate_uscc(changed)
    assert changed not in str(excinfo.value)


@given(valid_rics, st.integers(min_value=0, max_value=17), replacement_chars)
def test_any_single_character_change_to_a_valid_ric_is_rejected(number: str, position: int, replacement: str) -> None:
    """ISO 7064 MOD 11-2 catches every single substitution, check character included."""
    if number[position] == replacement:
        replacement = "X" if replacement == "0" else "0"
    changed = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(InvalidIdentifierError) as excinfo:
        validate_ric(changed, today=TODAY)
    assert changed[:14] not in str(excinfo.value)


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "identifier", "shown"),
    [
        pytest.param("ric", "32010219900101123X", "320102********123X", id="ric"),
        pytest.param("ric", "320102 19900101 123x", "320102********123X", id="ric-normalised-first"),
        pytest.param("ric", "3201021990", "**********", id="ric-of-wrong-length-fully-masked"),
        pytest.param("uscc", "91110108551385082Q", "91110108551385082Q", id="uscc-public"),
    ],
)
def test_mask_id_masks_ric_and_shows_uscc(id_type: IdType, identifier: str, shown: str) -> None:
    """A RIC shows its first 6 and last 4 characters; a USCC is public registration data."""
    assert mask_id(id_type, identifier) == shown


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        pytest.param("王五", "王*", id="two-characters"),
        pytest.param("欧阳娜娜", "欧***", id="compound-surname"),
        pytest.param("王", "王", id="one-character"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_name_keeps_the_first_character_only(name: str, shown: str) -> None:
    """Every character after the first becomes ``*``."""
    assert mask_name(name) == shown


# --- Subject -------------------------------------------------------------------------------------


def test_subject_normalises_its_id() -> None:
    """The model stores the normalised id, so equal subjects compare equal."""
    subject = Subject(id_type="ric", id=" 110105 19491231 002x ")
    assert subject.id == "11010519491231002X"
    assert subject == Subject(id_type="ric", id="11010519491231002X")


@pytest.mark.parametrize(
    ("id_type", "identifier", "message"),
    [
        pytest.param("uscc", BAD_USCC_CHECK, "USCC check character is wrong", id="uscc"),
        pytest.param("ric", GOOD_RIC[:17] + "2", "RIC check digit is wrong", id="ric"),
        pytest.param("uscc", GOOD_RIC, "USCC check character is wrong", id="ric-sent-as-uscc"),
        pytest.param("ric", "91110108551385082Q", "RIC must be 17 digits followed by a digit or X", id="uscc-as-ric"),
    ],
)
def test_subject_reports_an_invalid_id_on_the_id_field_without_the_id(
    id_type: str, identifier: str, message: str
) -> None:
    """The error points at ``id``, carries the safe message, and neither it nor str(exc) holds the id."""
    with pytest.raises(ValidationError) as excinfo:
        Subject.model_validate_json(f'{{"id_type": "{id_type}", "id": "{identifier}", "name": "张三"}}')
    errors = excinfo.value.errors()
    assert [(e["loc"], e["type"], e["msg"]) for e in errors] == [(("id",), "invalid_identifier", message)]
    assert identifier[:14] not in str(excinfo.value)
    assert "张三" not in str(excinfo.value)


def test_subject_takes_today_from_the_validation_context() -> None:
    """A birth date after the context's ``now`` (in UTC+8) is in the future; before it, it is not."""
    number = make_ric("32010220250601123")
    body = f'{{"id_type": "ric", "id": "{number}"}}'
    # 2025-05-31T16:30Z is already 2025-06-01 in China.
    assert Subject.model_validate_json(body, context={"now": datetime(2025, 5, 31, 16, 30, tzinfo=UTC)})
    with pytest.raises(ValidationError, match="RIC birth date is in the future"):
        Subject.model_validate_json(body, context={"now": datetime(2025, 5, 31, 15, 30, tzinfo=UTC)})


def test_subject_with_unknown_id_type_reports_only_the_id_type() -> None:
    """An unknown id_type is one error on ``id_type``; the id is not checked against a guess."""
    with pytest.raises(ValidationError) as excinfo:
        Subject.model_validate_json('{"id_type": "passport", "id": "E12345678"}')
    assert [e["loc"] for e in excinfo.value.errors()] == [("id_type",)]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"id_type": "uscc", "id": "91110108551385082Q", "name": ""}', id="empty-name"),
        pytest.param(
            '{"id_type": "uscc", "id": "91110108551385082Q", "name": "' + "商" * 201 + '"}', id="name-201-chars"
        ),
        pytest.param('{"id_type": "uscc", "id": 91110108551385082}', id="id-not-a-string"),
        pytest.param('{"id_type": "uscc", "id": "91110108551385082Q", "nmae": "x"}', id="unknown-field"),
        pytest.param('{"id_type": "uscc"}', id="id-missing"),
    ],
)
def test_subject_rejects_malformed_bodies(body: str) -> None:
    """Names are 1 to 200 characters, ids are strings, unknown fields and missing ids are errors."""
    with pytest.raises(ValidationError):
        Subject.model_validate_json(body)


def test_subject_accepts_a_200_character_name() -> None:
    """200 characters is the longest name allowed."""
    assert Subject(id_type="uscc", id="91110108551385082Q", name="商" * 200).name == "商" * 200


def test_ric_subject_masks_id_and_name() -> None:
    """A natural person's id and name are personal information, so both are masked."""
    subject = Subject(id_type="ric", id="11010519491231002X", name="张三丰")
    assert subject.masked_id == "110105********002X"
    assert subject.masked_name == "张**"
    assert subject.key == ("ric", "11010519491231002X")


def test_uscc_subject_shows_id_and_company_name_in_full() -> None:
    """A USCC and a company name are public registration data."""
    subject = Subject(id_type="uscc", id="91110108551385082Q", name="北京某某科技有限公司")
    assert subject.masked_id == "91110108551385082Q"
    assert subject.masked_name == "北京某某科技有限公司"
    assert subject.key == ("uscc", "91110108551385082Q")


def test_subject_without_name_has_no_masked_name() -> None:
    """No name, nothing to show."""
    assert Subject(id_type="ric", id="11010519491231002X").masked_name is None


def test_subject_repr_and_str_never_show_personal_information() -> None:
    """A logged RIC subject shows only the masked id and name."""
    subject = Subject(id_type="ric", id="11010519491231002X", name="张三")
    for text in (repr(subject), str(subject)):
        assert "11010519491231" not in text
        assert "张三" not in text
        assert "110105********002X" in text
        assert "张*" in text


def test_subject_is_frozen() -> None:
    """A validated subject cannot be changed into an unvalidated one."""
    subject = Subject(id_type="uscc", id="91110108551385082Q")
    with pytest.raises(ValidationError):
        subject.id = "anything"  # type: ignore[misc]


def test_china_standard_time_is_utc_plus_8() -> None:
    """Birth dates are compared with today's date in UTC+8."""
    assert CHINA_STANDARD_TIME.utcoffset(None) == timedelta(hours=8)


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=17, max_size=17))
def test_uscc_check_character_equals_python_stdnum(first17: str) -> None:
    """The table-driven mod-31 check on the hot path computes exactly what python-stdnum computes."""
    from stdnum.cn import uscc as stdnum_uscc

    from xinyong.subjects import _uscc_check_char

    assert _uscc_check_char(first17) == stdnum_uscc.calc_check_digit(first17)
