"""A small Amazon Braket price list, served offline in the format of AWS's bulk price list.

The Braket SDK's ``braket.tracking.Tracker`` prices quantum tasks from AWS's price list CSV
(``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBraket/current/index.csv``,
or ``BRAKET_PRICE_OFFERS_URL``): five lines of metadata, then a header and one row per price.
The emulator serves a list of the same shape at :data:`PATH` and points jobs (and the tools'
environments) at it, so cost tracking works with no internet.

The figures are the public on-demand prices of the Amazon Braket pricing page
(https://aws.amazon.com/braket/pricing/) as the project read them in December 2026, in USD,
the same in every Region: a stand-in for tests and estimates, not a quote. The rows have the
real list's shape (its columns, see :data:`COLUMNS`, and an on-demand term each); the real list
has many more rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from ...service import REGIONS

#: Where the emulator serves its price list (the real list's path).
PATH = "/offers/v1.0/aws/AmazonBraket/current/index.csv"
#: On-demand simulators, per minute of execution (billed at least 3 s per task).
SIMULATOR_PER_MINUTE = {"SV1": "0.075", "DM1": "0.075", "TN1": "0.275"}
#: QPUs: (per task, per shot), by the device name the Tracker derives from the ARN.
QPU_PRICES = {
    "Forte-1": ("0.30", "0.08"),
    "Forte-Enterprise-1": ("0.30", "0.08"),
    "Ankaa-3": ("0.30", "0.0009"),
    "Cepheus-1-108Q": ("0.30", "0.000425"),
    "Garnet": ("0.30", "0.00145"),
    "Emerald": ("0.30", "0.0016"),
    "Aquila": ("0.30", "0.01"),
    "IBEX": ("0.30", "0.0235"),
}
#: A hybrid job's storage volume, per GB-month (a stand-in: SageMaker's ML storage price).
VOLUME_PER_GB_MONTH = "0.14"
#: What an emulated QPU of another name costs.
DEFAULT_QPU_PRICE = ("0.30", "0.001")
#: Hybrid-job instances, per hour (the price list bills them per minute of the same rate).
INSTANCE_PER_HOUR = {
    "ml.m5.large": "0.115",
    "ml.m5.xlarge": "0.23",
    "ml.m5.2xlarge": "0.461",
    "ml.m5.4xlarge": "0.922",
    "ml.c5.xlarge": "0.204",
    "ml.c5.2xlarge": "0.408",
    "ml.c5.4xlarge": "0.816",
    "ml.p3.2xlarge": "3.825",
    "ml.g4dn.xlarge": "0.736",
}
#: The columns, in the order of AWS's bulk price list CSVs: the pricing details first
#: (``SKU, OfferTermCode, RateCode, TermType, PriceDescription, EffectiveDate, StartingRange,
#: EndingRange, Unit, PricePerUnit, Currency``: AWS Billing's "Reading the service price list
#: file for an AWS service", whose JSON form names the same fields), then the product's
#: attributes: those every service's list has (``Product Family``, ``serviceCode``,
#: ``Location``, ``Location Type``, ``usageType``, ``operation``, ``Region Code``) and those
#: the Braket SDK's ``Tracker`` and this project look Braket's prices up by (``Version``,
#: ``DeviceName``, ``Device Name``, ``Instance Type``).
COLUMNS = (
    "SKU",
    "OfferTermCode",
    "RateCode",
    "TermType",
    "PriceDescription",
    "EffectiveDate",
    "StartingRange",
    "EndingRange",
    "Unit",
    "PricePerUnit",
    "Currency",
    "Product Family",
    "serviceCode",
    "Location",
    "Location Type",
    "usageType",
    "operation",
    "Region Code",
    "Version",
    "DeviceName",
    "Device Name",
    "Instance Type",
)
#: The on-demand term's code and its price dimension's, as every AWS price list has them.
ON_DEMAND_TERM = "JRTCKXETXF"
ON_DEMAND_RATE = "6YS6EN2CT7"
#: The Regions' names and usage-type prefixes in the price list.
LOCATIONS = {
    "us-east-1": ("US East (N. Virginia)", "USE1"),
    "us-west-1": ("US West (N. California)", "USW1"),
    "us-west-2": ("US West (Oregon)", "USW2"),
    "eu-west-2": ("EU (London)", "EUW2"),
    "eu-north-1": ("EU (Stockholm)", "EUN1"),
}
EFFECTIVE_DATE = "2026-12-01T00:00:00Z"


def _row(
    index: int, unit: str, price: str, family: str, region: str, extra: dict[str, str]
) -> dict[str, str]:
    """One price row, with every column of the real list's shape filled."""
    row = dict.fromkeys(COLUMNS, "")
    sku = f"EMU{index:013d}"
    location, prefix = LOCATIONS.get(region, (region, region.upper()))
    product = extra.get("Version") or extra.get("DeviceName") or extra.get("Device Name")
    product = product or extra.get("Instance Type", "") or "Volume"
    row.update(
        {
            "SKU": sku,
            "OfferTermCode": ON_DEMAND_TERM,
            "RateCode": f"{sku}.{ON_DEMAND_TERM}.{ON_DEMAND_RATE}",
            "TermType": "OnDemand",
            "PriceDescription": f"USD {price} per {unit} for {family} {product} in {location}",
            "EffectiveDate": EFFECTIVE_DATE,
            "StartingRange": "0",
            "EndingRange": "Inf",
            "Unit": unit,
            "PricePerUnit": price,
            "Currency": "USD",
            "Product Family": family,
            "serviceCode": "AmazonBraket",
            "Location": location,
            "Location Type": "AWS Region",
            "usageType": f"{prefix}-{family.replace(' ', '')}-{product}",
            "Region Code": region,
            **extra,
        }
    )
    return row


def rows(qpu_names: Iterable[str] = ()) -> list[dict[str, str]]:
    """Every price row: simulators, the named QPUs (and the known ones), job instances."""
    found: list[dict[str, str]] = []

    def add(unit: str, price: str, family: str, region: str, **extra: str) -> None:
        found.append(_row(len(found), unit, price, family, region, extra))

    names = dict(QPU_PRICES)
    for name in qpu_names:
        names.setdefault(name, DEFAULT_QPU_PRICE)
    for region in REGIONS:
        for simulator, price in SIMULATOR_PER_MINUTE.items():
            add(
                "minutes",
                price,
                "Simulator Task",
                region,
                operation="CompleteTask",
                Version=simulator,
            )
            add(
                "minutes",
                price,
                "Braket Managed Jobs Simulator Task",
                region,
                operation="Managed-Jobs",
                Version=simulator,
            )
        for name, (task, shot) in sorted(names.items()):
            add("Task", task, "Quantum Task", region, DeviceName=name)
            add("Shot", shot, "Quantum Task-Shot", region, DeviceName=name)
            add("Task", task, "Braket Managed Jobs QPU Task", region, **{"Device Name": name})
            add("Shot", shot, "Braket Managed Jobs QPU Task Shot", region, **{"Device Name": name})
        add("GB-Mo", VOLUME_PER_GB_MONTH, "Braket Managed Jobs Volume", region)
        for instance, hourly in INSTANCE_PER_HOUR.items():
            per_minute = f"{float(hourly) / 60:.8f}"
            add(
                "minutes",
                per_minute,
                "Braket Managed Jobs Instance",
                region,
                **{"Instance Type": instance},
            )
    return found


def price_list(qpu_names: Iterable[str] = ()) -> bytes:
    """The price list as AWS serves it: five metadata lines, the header, the rows."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for name, value in (
        ("FormatVersion", "v1.0"),
        ("Disclaimer", "Braket-in-a-box: illustrative prices for offline cost estimates"),
        ("Publication Date", "2026-12-01T00:00:00Z"),
        ("Version", "20261201000000"),
        ("OfferCode", "AmazonBraket"),
    ):
        writer.writerow([name, value])
    writer.writerow(COLUMNS)
    for row in rows(qpu_names):
        writer.writerow([row[column] for column in COLUMNS])
    return out.getvalue().encode()


def qpu_name(arn: str) -> str:
    """The device name the Tracker looks a QPU's price up by (its ARN's last part, first
    letter in upper case)."""
    name = arn.rsplit("/", 1)[-1]
    return name[:1].upper() + name[1:]
