"""The product catalogue both emulators are seeded with.

One list, so a Salesforce ``Product2.WH_Product_ID__c`` always names a product the WHMCS
emulator knows. Ids and SKUs follow the portal this project replaces
(shared/reference/assist_design.md §7); SIM pids were not visible there and are made up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogueProduct:
    name: str
    sku: str
    category: str  # Product2Categories1__c: Internet | SIM | VPN | Other
    item_class: str  # Item_Class__c: Service | Installation | Add-on | Activation
    billing_cycle: str  # Billing_Cycle__c: Monthly | Onetime
    whmcs_pid: int
    price: float  # JPY, excluding tax
    whmcs_group: str
    module: str  # WHMCS provisioning module name (servertype)


CATALOGUE: tuple[CatalogueProduct, ...] = (
    CatalogueProduct("Internet Silver (Home 1G)", "INTERNET-SILVER-HOME-1G", "Internet", "Service", "Monthly", 181, 4800, "Internet", "sonixnet"),
    CatalogueProduct("Internet Gold (Home 1G)", "INTERNET-GOLD-HOME-1G", "Internet", "Service", "Monthly", 182, 5800, "Internet", "sonixnet"),
    CatalogueProduct("Internet Platinum (Home 1G)", "INTERNET-PLATINUM-HOME-1G", "Internet", "Service", "Monthly", 183, 7200, "Internet", "sonixnet"),
    CatalogueProduct("Internet Gold (Apartment 1G)", "INTERNET-GOLD-APT-1G", "Internet", "Service", "Monthly", 185, 4200, "Internet", "sonixnet"),
    CatalogueProduct("Internet Gold", "INTERNET-GOLD", "Internet", "Service", "Monthly", 188, 5500, "Internet", "sonixnet"),
    CatalogueProduct("Internet Installation", "INTERNET-INSTALL-SINGLE", "Internet", "Installation", "Onetime", 242, 15000, "Internet", ""),
    CatalogueProduct("Weekend Installation Fee", "INTERNET-INSTALL-WEEKEND", "Internet", "Installation", "Onetime", 245, 3000, "Internet", ""),
    CatalogueProduct("Hikari Denwa (home phone)", "INTERNET-ADDON-HOME-PHONE", "Internet", "Add-on", "Monthly", 246, 450, "Internet", ""),
    CatalogueProduct("Hikari Denwa Installation", "INTERNET-ADDON-DENWA-INSTALL", "Internet", "Installation", "Onetime", 247, 1000, "Internet", ""),
    CatalogueProduct("VPN USA (San Francisco)", "VPN-USA-SF", "VPN", "Service", "Monthly", 33, 1980, "VPN", "vpnrouter"),
    CatalogueProduct("VPN UK (London)", "VPN-UK-LONDON", "VPN", "Service", "Monthly", 54, 1980, "VPN", "vpnrouter"),
    CatalogueProduct("VPN Activation Fee", "VPN-ACTIVATION", "VPN", "Activation", "Onetime", 37, 3000, "VPN", ""),
    CatalogueProduct("SIM Data 5GB", "SIM-DATA-5GB", "SIM", "Service", "Monthly", 301, 990, "SIM", "freebit"),
    CatalogueProduct("SIM Voice 10GB", "SIM-VOICE-10GB", "SIM", "Service", "Monthly", 302, 1980, "SIM", "freebit"),
    CatalogueProduct("eSIM Voice 20GB", "ESIM-VOICE-20GB", "SIM", "Service", "Monthly", 303, 2480, "SIM", "freebit"),
    CatalogueProduct("SIM Activation Fee", "SIM-ACTIVATION", "SIM", "Activation", "Onetime", 310, 3300, "SIM", ""),
    CatalogueProduct("SIM Voicemail", "SIM-ADDON-VOICEMAIL", "SIM", "Add-on", "Monthly", 311, 300, "SIM", ""),
)

# A product Salesforce sells but nobody mapped to WHMCS: the PRODUCT_MAPPING_MISSING bad apple.
UNMAPPED_PRODUCT = CatalogueProduct(
    "Static IP Add-on (not yet in WHMCS)", "INTERNET-ADDON-STATIC-IP", "Internet", "Add-on", "Monthly", 0, 800, "Internet", ""
)

BY_SKU = {p.sku: p for p in CATALOGUE}
BY_PID = {p.whmcs_pid: p for p in CATALOGUE}
