"""Reading a price list (CSV or JSON) into validated price rows, for `manage.py load_prices`.

CSV: a header line, then one price a line:

    model,effective_from,input_per_mtok,output_per_mtok,cache_write_5m_per_mtok,
    cache_write_1h_per_mtok,cache_read_per_mtok[,web_search_per_1k,web_fetch_per_1k,
    code_execution_per_hour]

JSON: a list of objects with the same names (or `{"prices": [...]}`); prices as strings or
numbers (read as decimals, never floats). Token prices are US dollars per million tokens; the
server-tool columns are optional (their defaults are Anthropic's list prices, usage/models.py).
`effective_from` is a date (midnight UTC) or an ISO 8601 date-time (UTC unless it says).

Every problem of the file is reported, with its line (CSV) or entry (JSON), and nothing is
loaded unless the whole file is valid.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.utils.dateparse import parse_date, parse_datetime

from .models import ModelPrice

TOKEN_PRICES = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_write_per_mtok",
    "cache_write_1h_per_mtok",
    "cache_read_per_mtok",
)
TOOL_PRICES = ("web_search_per_1k", "web_fetch_per_1k", "code_execution_per_hour")
PRICE_FIELDS = TOKEN_PRICES + TOOL_PRICES
# Names a file may use → the column they fill (the 5-minute write is spelled out in files).
ALIASES = {"cache_write_5m_per_mtok": "cache_write_per_mtok"}
REQUIRED = ("model", "effective_from", *TOKEN_PRICES)
KNOWN = {"model", "effective_from", *PRICE_FIELDS, *ALIASES}
MAX_PRICE = Decimal("999999.999999")  # the column: 12 digits, 6 after the point
MAX_ROWS = 10_000
# A model id or family prefix, as the gateway accepts model ids (gateway/sse.py's MODEL_ID).
MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


class PriceListError(ValueError):
    """The file cannot be loaded; `problems` lists every reason, each with where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PriceRow:
    model: str
    effective_from: datetime
    prices: dict[str, Decimal]  # of PRICE_FIELDS; tool prices only when the file gives them


def read_price_list(path: str | Path) -> list[PriceRow]:
    """The rows of the price list at `path` (format by extension: .json, else CSV)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PriceListError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceListError([f"{path}: cannot be read ({exc})"]) from None
    if path.suffix.lower() == ".json":
        return parse_json(text)
    return parse_csv(text)


def parse_csv(text: str) -> list[PriceRow]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise PriceListError(["line 1: the file is empty (a header line is needed)"])
    reader.fieldnames = header
    problems = _header_problems(header, "line 1")
    if problems:
        raise PriceListError(problems)
    entries = []
    for record in reader:
        where = f"line {reader.line_num}"
        if None in record:
            problems.append(f"{where}: more values than columns")
            continue
        if not any((value or "").strip() for value in record.values()):
            continue  # a blank line
        entries.append((where, record))
    return _validate(entries, problems)


def parse_json(text: str) -> list[PriceRow]:
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise PriceListError([f"not valid JSON: {exc}"]) from None
    if isinstance(data, dict) and isinstance(data.get("prices"), list):
        data = data["prices"]
    if not isinstance(data, list):
        raise PriceListError(['expected a list of prices (or {"prices": [...]})'])
    entries, problems = [], []
    for n, record in enumerate(data, start=1):
        where = f"entry {n}"
        if not isinstance(record, dict):
            problems.append(f"{where}: not an object")
            continue
        problems.extend(_header_problems(list(record), where))
        entries.append((where, record))
    return _validate(entries, problems)


def _header_problems(names: list[str], where: str) -> list[str]:
    problems = []
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        problems.append(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}")
    given = {ALIASES.get(name, name) for name in names}
    missing = [name for name in REQUIRED if name not in given]
    if missing:
        problems.append(f"{where}: missing column(s) {', '.join(missing)}")
    if len(given) < len(names):
        problems.append(f"{where}: a column is given twice")
    return problems


def _validate(entries: list[tuple[str, dict]], problems: list[str]) -> list[PriceRow]:
    if len(entries) > MAX_ROWS:
        problems.append(f"more than {MAX_ROWS:,} prices in one file")
    rows: list[PriceRow] = []
    seen: dict[tuple[str, datetime], str] = {}
    for where, record in entries[:MAX_ROWS]:
        values = {ALIASES.get(k, k): v for k, v in record.items()}
        row_problems: list[str] = []
        model = _model(values.get("model"), row_problems)
        effective_from = _moment(values.get("effective_from"), row_problems)
        prices = {}
        for name in PRICE_FIELDS:
            value = values.get(name)
            if name in TOOL_PRICES and (value is None or value == ""):
                continue  # optional: the model's default
            price = _price(name, value, row_problems)
            if price is not None:
                prices[name] = price
        if not row_problems:
            key = (model, effective_from)
            if key in seen:
                row_problems.append(f"repeats the price of {model} from {values['effective_from']}"
                                    f" ({seen[key]})")  # fmt: skip
            seen.setdefault(key, where)
        if row_problems:
            problems.extend(f"{where}: {problem}" for problem in row_problems)
        else:
            rows.append(PriceRow(model, effective_from, prices))
    if problems:
        raise PriceListError(problems)
    if not rows:
        raise PriceListError(["the file holds no prices"])
    return rows


def _model(value, problems: list[str]) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not MODEL.fullmatch(text):
        problems.append(f"model: {value!r} is not a model id or family (claude-sonnet-4-5)")
    return text


def _moment(value, problems: list[str]) -> datetime | None:
    if isinstance(value, (int, float, Decimal)) or not isinstance(value, str) or not value.strip():
        problems.append("effective_from: a date (2025-01-01) or an ISO date-time is needed")
        return None
    text = value.strip()
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, time(), tzinfo=UTC) if day else None
    except ValueError:
        moment = None
    if moment is None:
        problems.append(f"effective_from: {text!r} is not a date (2025-01-01) or ISO date-time")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not date(2000, 1, 1) <= moment.astimezone(UTC).date() <= date(2100, 1, 1):
        problems.append(f"effective_from: {text!r} is out of range")
        return None
    return moment.astimezone(UTC)


def _price(name: str, value, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        problems.append(f"{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        problems.append(f"{name}: {value!r} is not a number")
        return None
    try:
        price = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        problems.append(f"{name}: {value!r} is not a number")
        return None
    if not price.is_finite():
        problems.append(f"{name}: {value!r} is not a number")
    elif price < 0:
        problems.append(f"{name}: {value} is negative")
    elif price > MAX_PRICE:
        problems.append(f"{name}: {value} is more than {MAX_PRICE}")
    elif price != price.quantize(Decimal("0.000001"), rounding="ROUND_DOWN"):
        problems.append(f"{name}: {value} has more than 6 decimal places")
    else:
        return price
    return None


def model_field_defaults() -> dict[str, Decimal]:
    """The tool prices a row gets when a file gives none (the model's defaults)."""
    return {name: ModelPrice._meta.get_field(name).get_default() for name in TOOL_PRICES}
