"""A BMC built on pyghmi's server class, for fence_lsaa_ipmi's tests.

    ipmi_bmc.py PORT STATEFILE USER PASSWORD [KG_HEX]

Deliberately *without* the server-side SHA-1 patch of lab-recipes.md B.2: like
VirtualBMC, it answers "OK, suite 3" to a proposal of suite 17 and signs RAKP2
with HMAC-SHA1, which crashes pyghmi's own client -- the agent must cope.
The power state is a JSON file (``{"power": "on"}``) the test reads back.
Power cycle is supported (off, then on), unlike VirtualBMC 3.3.0.
Exits when its parent dies (it is started by a test and must not outlive it).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

import pyghmi.ipmi.bmc as bmc


class FileBmc(bmc.Bmc):  # type: ignore[misc]
    def __init__(self, authdata: dict[str, str], port: int, statefile: str) -> None:
        super().__init__(authdata, port=port, address="127.0.0.1")
        self.statefile = statefile

    def _get(self) -> str:
        try:
            with open(self.statefile, encoding="utf-8") as f:
                return str(json.load(f)["power"])
        except (OSError, ValueError, KeyError):
            return "off"

    def _set(self, value: str) -> None:
        with open(self.statefile + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"power": value}, f)
        os.replace(self.statefile + ".tmp", self.statefile)

    def get_power_state(self) -> str:
        return self._get()

    def power_off(self) -> None:
        self._set("off")

    def power_on(self) -> None:
        self._set("on")

    def power_cycle(self) -> None:
        self._set("off")
        self._set("on")

    def power_shutdown(self) -> None:
        self._set("off")

    def power_reset(self) -> None:
        pass

    def get_boot_device(self) -> str:
        return "default"

    def set_boot_device(self, bootdevice: object) -> None:
        pass

    def cold_reset(self) -> None:
        pass


def main() -> None:
    port, statefile, user, password = sys.argv[1:5]
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    server = FileBmc({user: password}, int(port), statefile)
    if len(sys.argv) > 5:
        server.kg = bytes.fromhex(sys.argv[5])
    print("ready", flush=True)
    server.listen()


if __name__ == "__main__":
    main()
