"""Split messy Korean ingredient text into (section, name, amount) items.

The public COOKRCP01 data glues things together: a dish name in front of the
first item (``"새우두부계란찜연두부 75g"``), section headers in the middle of an
item (``"무염버터 5g(1작은술)고명시금치 10g"``, ``"레몬즙 15g소스 : 칠리소스 30g"``),
bullets, ``<br>`` and commas. The scanner here never raises: whatever it cannot
read becomes a name without an amount, and empty pieces are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_FRACTIONS = "½⅓⅔¼¾⅕⅛"
_NUM = rf"(?:\d+(?:[.,/]\d+)?[{_FRACTIONS}]?|[{_FRACTIONS}])"
_UNITS = (
    "kg|mg|g|ml|mL|ML|L|l|cc|큰술|작은술|숟가락|스푼|티스푼|컵|T|t|개|쪽|장|줄기|줄|마리|모|봉지|봉|포기|뿌리|알|"
    "cm|mm|줌|꼬집|토막|송이|대|톨|조각|팩|캔|통|근|방울|단|잎|공기|그릇|주먹|인분|Ts|ts|tbsp|tsp|oz|cup"
)
# An amount: "20g(5마리)", "1½컵", "약 2~3개", "(150g)", "300ml(1½컵)".
_AMOUNT = re.compile(
    rf"(?:약\s*)?{_NUM}(?:\s*[~\-]\s*{_NUM})?\s*(?:{_UNITS})?(?:\s*(?:정도|내외|이상|씩))?(?:\s*\([^()]*\))*"
    r"|\((?=\s*(?:약\s*)?\d|\s*[" + _FRACTIONS + r"])[^()]*\)(?:\s*\([^()]*\))*"
    r"|약간|적당량|적당히|조금|소량|한\s?줌|한\s?꼬집|반\s?개|반\s?컵|취향껏|넉넉히|기호에\s?따라|필요량"
)
_AMOUNT_START = re.compile(r"(?<![가-힣])약\s*\d|\d|[" + _FRACTIONS + r"]|\((?=\s*(?:약\s*)?[\d" + _FRACTIONS + r"])"
                           r"|약간|적당량|적당히|조금|소량|한\s?줌|한\s?꼬집|반\s?개|반\s?컵|취향껏|넉넉히|기호에\s?따라|필요량")
_SEPARATORS = re.compile(r"<br\s*/?>|[\n\r●•○◆◇■□▶►★☆※·|,]|\s-\s|^-\s*|\s-(?=\S)")
_BRACKET_HEADER = re.compile(r"^\s*[\[<【]([^\]>】]*)[\]>】]\s*")
_PAREN_HEADER = re.compile(r"^\s*\(([^()\d]*(?:재료|양념|소스|반죽|고명|육수)[^()\d]*)\)\s*")
_COLON_HEADER = re.compile(r"^\s*([^:：\d()\[\]]{1,24}?)\s*[:：]\s*")
_SERVINGS = re.compile(r"^\s*\d+\s*인분\s*(?:기준)?\s*")
# Section words that open a list without a colon ("재료 가지(40g)", "고명시금치 10g").
_HEADER_WORDS = (
    "필수재료", "필수 재료", "주재료", "부재료", "재료", "고명", "장식", "곁들임", "곁들이채소", "양념장", "양념",
    "소스", "드레싱", "육수", "반죽", "속재료", "추가재료",
)
# A first word that names a section ("다시마육수 다시마(3g)", "저염간장양념 저염간장").
_HEADER_TOKEN = re.compile(r"([가-힣]{1,12}(?:육수|양념|양념장|소스|드레싱|밑간|재료|반죽))\s+")
_SPACES = re.compile(r"\s+")
_TRIM = " \t-–—~:;.*+=_'\"`/\\"


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One ingredient as written: the section it sits in, its name and its amount text."""

    section: str
    name: str
    amount: str


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _squash(text: str) -> str:
    return _SPACES.sub("", text)


def _strip_header(piece: str) -> tuple[str | None, str]:
    """A leading section header, if any, and the rest of the piece."""
    header: str | None = None
    while True:
        m = _SERVINGS.match(piece)
        if m:
            piece = piece[m.end():]
            continue
        m = _BRACKET_HEADER.match(piece) or _PAREN_HEADER.match(piece)
        if m:
            header, piece = m.group(1).strip(), piece[m.end():]
            continue
        m = _COLON_HEADER.match(piece)
        if m and piece[m.end():].strip():
            header, piece = m.group(1).strip(), piece[m.end():]
            continue
        stripped = piece.lstrip(_TRIM)
        m = _HEADER_TOKEN.match(stripped)
        if m and stripped[m.end():].strip() and not _AMOUNT_START.match(stripped[m.end():].strip()):
            header, piece = m.group(1), stripped[m.end():]
            continue
        for word in _HEADER_WORDS:
            if stripped.startswith(word):
                rest = stripped[len(word):]
                # Only a header when something follows that is not itself an amount
                # ("고명시금치 10g" is, "소스 5g" is an ingredient called 소스).
                if rest.strip() and not _AMOUNT_START.match(rest.strip()) and (
                    rest[:1].isspace() or word in ("고명", "장식", "재료", "필수재료", "주재료", "부재료")
                ):
                    header, piece = word, rest
                    break
        else:
            return header, piece
        continue


def _clean_name(name: str) -> str:
    name = name.strip(_TRIM + "()[]<>")
    # An unbalanced "(" left by a cut amount ("쇠고기(양지") ends the name.
    if name.count("(") > name.count(")"):
        name = name[: name.rfind("(")]
    return _SPACES.sub(" ", name).strip(_TRIM)


def _has_letter(text: str) -> bool:
    """Whether ``text`` can name an ingredient: Hangul or a Latin word, and not itself an amount."""
    if _AMOUNT.fullmatch(text):
        return False
    return any("가" <= c <= "힣" for c in text) or sum(c.isalpha() for c in text) >= 3


def _scan(piece: str, section: str, out: list[ParsedItem]) -> None:
    """Read name/amount pairs from one piece; glued text after an amount starts a new item."""
    while piece.strip(_TRIM):
        header, piece = _strip_header(piece)
        if header is not None:
            section = header
        start = 0
        # A name may begin with digits ("2가지색 미니파프리카"): look for an amount after the first letter.
        while True:
            m = _AMOUNT_START.search(piece, start)
            if m is None or (m.start() > 0 and _has_letter(_clean_name(piece[: m.start()]))):
                break
            start = m.end()
        if m is None:
            name = _clean_name(piece)
            if _has_letter(name):
                out.append(ParsedItem(section, name, ""))
            return
        amount_match = _AMOUNT.match(piece, m.start())
        end = amount_match.end() if amount_match else m.end()
        name = _clean_name(piece[: m.start()])
        if not _has_letter(name):
            name = ""  # a stray amount fragment ("250g)") belongs to no item
        amount = piece[m.start(): end].strip()
        if amount.startswith("(") and amount.endswith(")") and amount.count("(") == 1:
            amount = amount[1:-1].strip()
        if name:
            out.append(ParsedItem(section, name, amount))
        piece = piece[end:]


def parse_ingredient_lines(lines: list[str], title: str = "") -> list[ParsedItem]:
    """Every ingredient found in ``lines`` (the simple format's list, or RCP_PARTS_DTLS lines)."""
    out: list[ParsedItem] = []
    title = nfc(title).strip()
    title_pending = bool(title)
    for raw in lines:
        text = nfc(raw).replace("&amp;", "&").replace("\u00a0", " ")
        if title_pending and text.strip():
            text = _strip_title(text, title)
            # A line that was only the dish name: the next line may still start with it.
            title_pending = not text.strip()
        for piece in _SEPARATORS.split(text):
            if piece and piece.strip(_TRIM):
                _scan(piece, out[-1].section if out else "", out)
    return out


def _strip_title(text: str, title: str) -> str:
    """Drop a dish name glued in front of the first item ("새우두부계란찜연두부 75g" → "연두부 75g").

    The whole title, or its last words when they are at least three letters
    long ("사과 새우 북엇국" / "북엇국북어채 25g"), so a short word such as
    "마늘" is never cut from "마늘종".
    """
    words = title.split()
    candidates = [_squash(title)] + [c for k in range(1, len(words)) if len(c := "".join(words[k:])) >= 3]
    for candidate in candidates:
        stripped = _strip_prefix(text, candidate)
        if stripped is not None:
            return stripped
    return text


def _strip_prefix(text: str, squashed_title: str) -> str | None:
    body = text.lstrip(_TRIM + "●•[]")
    consumed = 0
    matched = 0
    while consumed < len(body) and matched < len(squashed_title):
        ch = body[consumed]
        if ch.isspace():
            consumed += 1
            continue
        if ch != squashed_title[matched]:
            return None
        consumed += 1
        matched += 1
    rest = body[consumed:]
    if matched < len(squashed_title):
        return None
    if not rest.strip(_TRIM):
        return ""  # the official format puts the dish name on a line of its own
    if not _AMOUNT_START.match(rest.lstrip()):
        return rest.lstrip(" :：\n")
    return None
