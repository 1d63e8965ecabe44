"""Zoho data centers: the accounts, API and upload host of each (zoho-crm-api.md §1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Hosts:
    """The three Zoho hosts syncd talks to; tokens of one data center work only on its hosts."""

    accounts_url: str
    api_domain: str
    upload_url: str


def _hosts(accounts_url: str, api_domain: str, file_upload_base: str) -> Hosts:
    return Hosts(accounts_url, api_domain, file_upload_base + "/crm/v8/upload")


DATA_CENTERS: Mapping[str, Hosts] = MappingProxyType(
    {
        "us": _hosts(
            "https://accounts.zoho.com", "https://www.zohoapis.com", "https://content.zohoapis.com"
        ),
        "eu": _hosts(
            "https://accounts.zoho.eu", "https://www.zohoapis.eu", "https://content.zohoapis.eu"
        ),
        "in": _hosts(
            "https://accounts.zoho.in", "https://www.zohoapis.in", "https://content.zohoapis.in"
        ),
        "au": _hosts(
            "https://accounts.zoho.com.au",
            "https://www.zohoapis.com.au",
            "https://content.zohoapis.com.au",
        ),
        "jp": _hosts(
            "https://accounts.zoho.jp", "https://www.zohoapis.jp", "https://content.zohoapis.jp"
        ),
        "cn": _hosts(
            "https://accounts.zoho.com.cn",
            "https://www.zohoapis.com.cn",
            "https://content.zohoapis.com.cn",
        ),
        "ca": _hosts(
            "https://accounts.zohocloud.ca",
            "https://www.zohoapis.ca",
            "https://upload.zohocloud.ca",
        ),
        "sa": _hosts(
            "https://accounts.zoho.sa", "https://www.zohoapis.sa", "https://files.zoho.sa"
        ),
    }
)

# The data_center of a config that leaves it out and sets all three hosts (emulator, proxies).
CUSTOM_DATA_CENTER = "custom"
