"""Market subjects: who a credit record is about, and how their identifiers are checked and shown.

Two kinds of identifier (docs/wire-contract.md, "Subjects"):

- **USCC**, unified social credit code (GB 32100-2015), of an organisation or business: public
  registration data, shown in full.
- **RIC**, resident identity card number (GB 11643-1999), of a natural person: personal
  information. It is masked wherever shown (``320102********123X``), and so is the person's name
  (``王*``). Errors about an identifier never repeat it.

Input is normalised (all whitespace removed, upper-cased) before validation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from stdnum.cn import ric as _stdnum_ric

from xinyong.errors import InvalidIdentifierError
from xinyong.wire import WireModel

__all__ = [
    "CHINA_STANDARD_TIME",
    "IdType",
    "InvalidIdentifierError",
    "Subject",
    "mask_id",
    "mask_name",
    "normalize_id",
    "validate_ric",
    "validate_uscc",
]

IdType = Literal["uscc", "ric"]

#: UTC+8, the zone birth dates on resident identity cards are written in (Asia/Shanghai has had
#: no daylight saving time since 1991, so a fixed offset is exact for "today").
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_RE = re.compile(f"[{_USCC_ALPHABET}]{{18}}")
_RIC_RE = re.compile("[0-9]{17}[0-9X]")
# GB 11714-1997: weights of the eight body characters of an organisation code.
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_CODE_WEIGHTED = tuple({c: v * w for c, v in _ORG_CODE_VALUES.items()} for w in _ORG_CODE_WEIGHTS)


def normalize_id(raw: str) -> str:
    """Remove every whitespace character (inner ones too) and upper-case the rest."""
    return "".join(raw.split()).upper()


# GB 32100-2015 mod-31 check: character values are their positions in the alphabet, weights 3^i mod 31 (i from
# the left). Written as base-34 digits in reverse order, the 17 values make a number equal to that weighted sum
# modulo 31, since 34 = 3 (mod 31); every value (at most 30) is a base-34 digit.
_USCC_AS_BASE34 = str.maketrans({c: "0123456789abcdefghijklmnopqrstu"[i] for i, c in enumerate(_USCC_ALPHABET)})


def _uscc_check_char(code: str) -> str:
    """The mod-31 check character of a USCC (from its first 17 characters, all of the USCC alphabet).

    The same computation as ``stdnum.cn.uscc.calc_check_digit`` (a property test holds them equal), done in
    three C-level steps (reverse, translate, parse as base 34): this runs for every subject of every webhook and
    screening, where python-stdnum's generic version costs several times more.
    """
    return _USCC_ALPHABET[-int(code[16::-1].translate(_USCC_AS_BASE34), 34) % 31]


def _org_code_check_char(body: str) -> str:
    """GB 11714 check character of the eight-character body of an organisation code."""
    check = 11 - sum(map(dict.__getitem__, _ORG_CODE_WEIGHTED, body)) % 11
    if check == 10:
        return "X"
    if check == 11:
        return "0"
    return str(check)


def validate_uscc(code: str) -> str:
    """Validate a unified social credit code and return it normalised.

    Checks the length, the alphabet (digits and upper-case letters except I, O, S, V, Z), the
    mod-31 check character (18th) and the GB 11714 check character (17th) of the embedded
    organisation code (9th to 17th). The registration authority (1st) and the category (2nd) may
    be letters (``N`` agriculture, ``Y`` other authorities …), so they are not required to be digits.

    :raises InvalidIdentifierError: with a message that does not contain the code.
    """
    return _check_uscc(normalize_id(code))


@functools.lru_cache(maxsize=8192)
def _check_uscc(code: str) -> str:
    """:func:`validate_uscc` on a normalised code, remembered for the codes that pass: the same merchants
    and couriers recur in webhook after webhook (a USCC is public data, fine to keep in memory)."""
    if len(code) != 18:
        raise InvalidIdentifierError("USCC must be 18 characters long")
    if _USCC_RE.fullmatch(code) is None:
        raise InvalidIdentifierError("USCC may only contain digits and upper-case letters other than I, O, S, V and Z")
    if code[17] != _uscc_check_char(code):
        raise InvalidIdentifierError("USCC check character is wrong")
    if code[16] != _org_code_check_char(code[8:16]):
        raise InvalidIdentifierError("USCC organisation code check character is wrong")
    return code


def validate_ric(number: str, *, today: date | None = None) -> str:
    """Validate a resident identity card number and return it normalised.

    Checks the length, the format (17 digits and a digit or ``X``), the ISO 7064 MOD 11-2 check
    character and the birth date (characters 7 to 14): a real date, not after ``today`` (default:
    today in China Standard Time). The region code is deliberately not checked against a table: a
    number keeps the code of the district that issued it after that district is abolished.

    :raises InvalidIdentifierError: with a message that does not contain the number.
    """
    number = normalize_id(number)
    if len(number) != 18:
        raise InvalidIdentifierError("RIC must be 18 characters long")
    if _RIC_RE.fullmatch(number) is None:
        raise InvalidIdentifierError("RIC must be 17 digits followed by a digit or X")
    if number[17] != _stdnum_ric.calc_check_digit(number):
        raise InvalidIdentifierError("RIC check digit is wrong")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdentifierError("RIC birth date is not a real date") from None
    if today is None:
        today = datetime.now(CHINA_STANDARD_TIME).date()
    if birth > today:
        raise InvalidIdentifierError("RIC birth date is in the future")
    return number


def mask_id(id_type: IdType, id: str) -> str:
    """Return the identifier as it may be shown: a RIC masked, a USCC (public data) in full.

    ``320102199001011234`` → ``320102********1234``. Input is normalised first; a "RIC" that is not
    18 characters long is masked completely rather than partly revealed.
    """
    normalised = normalize_id(id)
    if id_type == "uscc":
        return normalised
    if len(normalised) != 18:
        return "*" * len(normalised)
    return f"{normalised[:6]}{'*' * 8}{normalised[-4:]}"


def mask_name(name: str) -> str:
    """Return a natural person's name as it may be shown: the first character, then ``*`` each.

    ``王五`` → ``王*``, ``欧阳娜娜`` → ``欧***``; an empty name stays empty.
    """
    return name[:1] + "*" * (len(name) - 1)


def _today_from(info: ValidationInfo) -> date | None:
    """The date of the validation context's ``now`` in China Standard Time, if a ``now`` was given."""
    context = info.context
    if isinstance(context, dict):
        now = context.get("now")
        if isinstance(now, datetime):
            return now.astimezone(CHINA_STANDARD_TIME).date()
    return None


class Subject(WireModel):
    """A market subject: an organisation or business by USCC, or a natural person by RIC.

    The id is normalised (whitespace removed, upper-cased) and validated for its id_type; an invalid
    one is reported on the id field with a message that never repeats it.
    """

    id_type: IdType = Field(
        description="`uscc`: unified social credit code (GB 32100); `ric`: resident identity card (GB 11643)."
    )
    id: str = Field(
        description=(
            "The identifier. Whitespace is removed and letters are upper-cased before validation. "
            "A RIC is personal information."
        )
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="Registered name. A natural person's name (RIC subject) is personal information.",
    )

    @field_validator("id", mode="after")
    @classmethod
    def _normalise_and_validate_id(cls, value: str, info: ValidationInfo) -> str:
        id_type = info.data.get("id_type")
        try:
            if id_type == "uscc":
                return validate_uscc(value)
            if id_type == "ric":
                return validate_ric(value, today=_today_from(info))
        except InvalidIdentifierError as exc:
            # A custom error type keeps pydantic's "Value error, " prefix off the message; the
            # message itself never contains the identifier.
            raise PydanticCustomError("invalid_identifier", str(exc)) from None
        # id_type itself is invalid and already reported; there is nothing to check the id against.
        return normalize_id(value)

    @property
    def masked_id(self) -> str:
        """The identifier as it may be shown: a RIC masked, a USCC in full."""
        return mask_id(self.id_type, self.id)

    @property
    def masked_name(self) -> str | None:
        """The name as it may be shown: a person's (RIC) name masked, a company's (USCC) in full."""
        if self.name is None or self.id_type == "uscc":
            return self.name
        return mask_name(self.name)

    @property
    def key(self) -> tuple[IdType, str]:
        """``(id_type, id)``: what identifies the subject's credit file."""
        return (self.id_type, self.id)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """``repr()`` and ``str()`` show the masked id and name: a logged subject leaks no personal data."""
        yield "id_type", self.id_type
        yield "id", self.masked_id
        if self.name is not None:
            yield "name", self.masked_name
