"""Amazon Braket's prices, from Amazon's public price list: the rows a hybrid job's charges
are found by (its instance, and the quantum tasks it runs).

The list is the CSV of the AWS price list bulk API that the Braket SDK's ``braket.tracking``
reads (``BRAKET_PRICE_OFFERS_URL``, or Amazon's), fetched once per process with a time-out;
a failure is remembered for a while, so that tasks are accounted without prices meanwhile
instead of each waiting for the list. The emulator serves a copy offline.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from . import aws

#: Where the price list is read from: the variable the SDK's Tracker reads, else Amazon's.
PRICE_LIST_VARIABLE = "BRAKET_PRICE_OFFERS_URL"
PRICE_LIST_URL = (
    "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBraket/current/index.csv"
)
#: Seconds the price list may take to arrive.
PRICE_LIST_TIMEOUT = 30.0
#: After a failed fetch, tasks are accounted without prices for this long before another try.
PRICE_LIST_RETRY_SECONDS = 600.0

#: The price list's product families of a hybrid job's charges (jobs' tasks have their own).
INSTANCE_FAMILY = "Braket Managed Jobs Instance"
SIMULATOR_FAMILY = "Braket Managed Jobs Simulator Task"
QPU_TASK_FAMILY = "Braket Managed Jobs QPU Task"
QPU_SHOT_FAMILY = "Braket Managed Jobs QPU Task Shot"
#: The job's storage volume, per GB-month: billed besides its instance time (the Braket
#: developer tools of AWS, aws/agent-toolkit-for-aws, amazon-braket references/pricing.md:
#: "A hybrid job bills classical instance time ... and job storage (productFamily = Braket
#: Managed Jobs Volume, GB-month) plus any quantum task charges").
VOLUME_FAMILY = "Braket Managed Jobs Volume"
#: The product a family without one (the volume) is found by.
VOLUME = "volume"
_FAMILIES = (INSTANCE_FAMILY, SIMULATOR_FAMILY, QPU_TASK_FAMILY, QPU_SHOT_FAMILY, VOLUME_FAMILY)
#: Hours in the month a GB-month is prorated over (AWS's billing and Pricing Calculator: 730).
HOURS_PER_MONTH = 730
#: Time units of the price list, in milliseconds.
_UNIT_MS = {
    "milliseconds": 1,
    "millisecond": 1,
    "ms": 1,
    "seconds": 1000,
    "second": 1000,
    "secs": 1000,
    "sec": 1000,
    "minutes": 60_000,
    "minute": 60_000,
    "mins": 60_000,
    "min": 60_000,
    "hours": 3_600_000,
    "hour": 3_600_000,
    "hrs": 3_600_000,
    "hr": 3_600_000,
}


class PriceListUnavailable(RuntimeError):
    """The price list could not be fetched or read."""


@dataclass(frozen=True)
class Price:
    """One row of the price list: a price per unit, in a currency."""

    per_unit: Decimal
    unit: str
    currency: str

    def per_ms(self) -> Decimal | None:
        """The price of a millisecond, for a time unit; None for another kind of unit."""
        ms = _UNIT_MS.get(self.unit.strip().lower())
        return self.per_unit / ms if ms else None


@dataclass
class PriceList:
    """The rows of the price list a hybrid job's charges are found by."""

    source: str
    #: (product family, Region code, product) -> price; the product is the instance type, the
    #: simulator's ``Version`` (SV1) or the QPU's ``Device Name``.
    prices: dict[tuple[str, str, str], Price] = field(default_factory=dict)

    @classmethod
    def parse(cls, lines: Any, source: str) -> PriceList:
        """Read the price list's CSV (AWS's format: metadata lines, the header, the rows)."""
        found = cls(source)
        header: list[str] | None = None
        for row in csv.reader(lines):
            if header is None:
                if "PricePerUnit" in row and "Product Family" in row:
                    header = row
                continue
            item = dict(zip(header, row, strict=False))
            family = item.get("Product Family", "")
            if family not in _FAMILIES or item.get("TermType", "OnDemand") not in ("OnDemand", ""):
                continue
            if family == INSTANCE_FAMILY:
                product = item.get("Instance Type", "")
            elif family == VOLUME_FAMILY:
                product = VOLUME
            elif family == SIMULATOR_FAMILY:
                if item.get("operation", "Managed-Jobs") not in ("Managed-Jobs", ""):
                    continue
                product = item.get("Version", "")
            else:
                product = item.get("Device Name", "")
            try:
                price = Price(Decimal(item["PricePerUnit"]), item.get("Unit", ""), item["Currency"])
            except (KeyError, InvalidOperation):
                continue
            if product:
                found.prices[(family, item.get("Region Code", ""), product)] = price
        if header is None:
            raise PriceListUnavailable(f"{source} is not a price list (no header row)")
        return found

    def get(self, family: str, region: str, product: str) -> Price | None:
        return self.prices.get((family, region, product))


_lock = threading.Lock()
_price_list: PriceList | None = None
_failure: tuple[float, str] | None = None


def price_list_url() -> str:
    return os.environ.get(PRICE_LIST_VARIABLE) or PRICE_LIST_URL


def price_list(timeout: float = PRICE_LIST_TIMEOUT) -> PriceList:
    """The price list, fetched at the first call of the process (blocking: a thread's work).

    Raises:
        PriceListUnavailable: it could not be fetched or read (this is remembered for
            :data:`PRICE_LIST_RETRY_SECONDS`).
    """
    global _price_list, _failure
    with _lock:
        if _price_list is not None:
            return _price_list
        if _failure is not None and time.monotonic() - _failure[0] < PRICE_LIST_RETRY_SECONDS:
            raise PriceListUnavailable(_failure[1])
        url = price_list_url()
        try:
            _price_list = _fetch(url, timeout)
            _failure = None
            return _price_list
        except Exception as exc:  # any failure: no prices for a while
            reason = f"the price list {url} could not be read: {type(exc).__name__}: {exc}"
            _failure = (time.monotonic(), reason)
            raise PriceListUnavailable(reason) from exc


def _fetch(url: str, timeout: float) -> PriceList:
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise PriceListUnavailable(f"{PRICE_LIST_VARIABLE}={url!r} is not an http(s) URL")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return PriceList.parse(io.TextIOWrapper(response, encoding="utf-8"), url)


def forget_price_list() -> None:
    """Fetch the price list again at its next use (for tests)."""
    global _price_list, _failure
    with _lock:
        _price_list = None
        _failure = None


aws.on_reset(forget_price_list)
