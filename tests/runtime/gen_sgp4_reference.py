#!/usr/bin/python3
"""Writes tests/runtime/data/sgp4_reference.csv: SGP4 states from the
reference implementation (Debian's python3-sgp4, Vallado's code) for a fixed
sample of real LEO TLEs, for tests/runtime/sgp4_test.cpp.

Run with Debian's Python, from the repository root:

    apt-get install -y python3-sgp4
    /usr/bin/python3 tests/runtime/gen_sgp4_reference.py

Reference settings: Satrec.twoline2rv(line1, line2) with its defaults, WGS-72
and operation mode 'i' (improved), propagated with sgp4_tsince().

Sample, per TLE file (the 2022 StarryNet snapshots in tests/runtime/data/tle/
and the 2026 Starlink snapshot in scenarios/tle/):
  * every 300th element set (set indices 0, 300, 600, ...);
  * the sets with the largest eccentricity, the lowest perigee, the largest
    and the smallest B*, the largest ndot, the lowest and the highest
    inclination;
  * every set that the reference rejects (non-zero error code) at any of the
    sample times, so that the tests see the same errors.
Times since epoch [min]: -720, 0, 60, 360, 1440, 2880, 4320, 5760 (4 days).
Generated with python3-sgp4 2.15-0.1 (Debian 12; pure-Python Satrec, no C++
extension); runtime/sgp4.cpp reproduced every sample to the last bit.

Columns: file (its path from the repository root), index (0-based element-set index in the file), catalog,
tsince_min, x_km, y_km, z_km, vx_km_s, vy_km_s, vz_km_s, error (the
reference's error code; 0 = ok). Numbers are Python repr() (shortest text that
reads back to the same double). Rows with an error still carry the state the
reference returned (NaN when it returned none).
"""

import csv
import math
import os
import sys

from sgp4.api import Satrec

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FILES = [
    'tests/runtime/data/tle/StarryNet_Starlink.tle',
    'tests/runtime/data/tle/StarryNet_OneWeb.tle',
    'scenarios/tle/starlink-2026-02-24.tle',
]
STRIDE = 300
TIMES_MIN = [-720.0, 0.0, 60.0, 360.0, 1440.0, 2880.0, 4320.0, 5760.0]
OUT = os.path.join(HERE, 'data', 'sgp4_reference.csv')
EARTH_RADIUS_KM = 6378.135  # WGS-72, as SGP4 uses it


def read_sets(path):
    """(name, line1, line2) for every set, 2- or 3-line form, any line end."""
    with open(path, newline='') as f:
        lines = [l.rstrip() for l in f.read().replace('\r', '\n').split('\n')]
    lines = [l for l in lines if l]
    sets, i = [], 0
    while i < len(lines):
        if lines[i].startswith('1 '):
            sets.append(('', lines[i], lines[i + 1]))
            i += 2
        else:
            sets.append((lines[i].strip(), lines[i + 1], lines[i + 2]))
            i += 3
    return sets


def main():
    rows = []
    for name in FILES:
        sets = read_sets(os.path.join(REPO, name))
        sats = [Satrec.twoline2rv(l1, l2) for _, l1, l2 in sets]
        for s in sats:
            if 2 * math.pi / s.no_unkozai >= 225.0:
                sys.exit('%s: deep-space set %d in a LEO sample' % (name, s.satnum))
        n = len(sats)
        chosen = set(range(0, n, STRIDE))
        perigee = [s.a * (1 - s.ecco) for s in sats]
        for key in (lambda i: sats[i].ecco, lambda i: -perigee[i],
                    lambda i: sats[i].bstar, lambda i: -sats[i].bstar,
                    lambda i: sats[i].ndot, lambda i: sats[i].inclo,
                    lambda i: -sats[i].inclo):
            chosen.add(max(range(n), key=key))
        for i, s in enumerate(sats):
            if any(s.sgp4_tsince(t)[0] != 0 for t in TIMES_MIN):
                chosen.add(i)
        for i in sorted(chosen):
            s = sats[i]
            for t in TIMES_MIN:
                e, r, v = s.sgp4_tsince(t)
                if not r or r[0] is False or r[0] is None:
                    r = v = (float('nan'),) * 3
                rows.append([name, i, s.satnum, repr(t)] +
                            [repr(float(x)) for x in r] +
                            [repr(float(x)) for x in v] + [e])
        print('%s: %d sets, %d sampled' % (name, n, len(chosen)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(['file', 'index', 'catalog', 'tsince_min', 'x_km', 'y_km',
                    'z_km', 'vx_km_s', 'vy_km_s', 'vz_km_s', 'error'])
        w.writerows(rows)
    print('wrote %s: %d rows' % (OUT, len(rows)))


if __name__ == '__main__':
    main()
