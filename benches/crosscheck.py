#!/usr/bin/env python3
"""An independent implementation of the KPI definitions of DESIGN.md, to check
`ticketlake kpi` on a generated lake. Not part of the tests (it needs Python and DuckDB).

It shares no code with ticketlake: DuckDB only reads the Parquet files, and every KPI is
computed ticket by ticket in plain Python, straight from the definitions (business time
walks the local days one by one, with Easter from dateutil; a ticket's status at an
instant is looked up in its own history).

    pip install duckdb==2.0.0 python-dateutil
    ticketlake fixtures --tickets 200000 --start 2025-09 --months 12 --lake /tmp/lake
    ticketlake kpi --lake /tmp/lake --from 2025-09 --to 2026-08 --format json > /tmp/ours.json
    python3 benches/crosscheck.py /tmp/lake 2025-09 2026-08 /tmp/ours.json

Counts must match exactly, averages and quantiles to 1e-6. Exit code 0 when they do.
"""

import bisect
import collections
import datetime as dt
import json
import math
import sys
from zoneinfo import ZoneInfo

import duckdb
from dateutil.easter import easter

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.timezone.utc
DONE = {"resolved", "closed", "canceled"}
SLA = {1: (30 * 60, 4 * 3600), 2: (3600, 8 * 3600), 3: (4 * 3600, 24 * 3600), 4: (8 * 3600, 40 * 3600)}
ALSACE_MOSELLE = {"STRASBOURG"}


def holidays(year, alsace):
    e = easter(year)
    days = {dt.date(year, 1, 1), e + dt.timedelta(days=1), dt.date(year, 5, 1), dt.date(year, 5, 8),
            e + dt.timedelta(days=39), e + dt.timedelta(days=50), dt.date(year, 7, 14),
            dt.date(year, 8, 15), dt.date(year, 11, 1), dt.date(year, 11, 11), dt.date(year, 12, 25)}
    if alsace:
        days |= {e - dt.timedelta(days=2), dt.date(year, 12, 26)}
    return days


_hol = {}


def is_holiday(day, alsace):
    key = (day.year, alsace)
    if key not in _hol:
        _hol[key] = holidays(day.year, alsace)
    return day in _hol[key]


def business_seconds(org, a, b):
    """Seconds of [a, b) inside Mon–Fri 08:00–18:00 Paris, outside holidays."""
    if b is None or a is None or b <= a:
        return 0.0
    alsace = org in ALSACE_MOSELLE
    total = 0.0
    day = a.astimezone(PARIS).date()
    last = b.astimezone(PARIS).date()
    while day <= last:
        if day.weekday() < 5 and not is_holiday(day, alsace):
            o = dt.datetime.combine(day, dt.time(8), PARIS)
            c = dt.datetime.combine(day, dt.time(18), PARIS)
            lo, hi = max(a, o), min(b, c)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += dt.timedelta(days=1)
    return total


def month_of(t):
    return t.astimezone(PARIS).strftime("%Y-%m")


def percentile_cont(values, q):
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def instant(us):
    return EPOCH + dt.timedelta(microseconds=us)


def load(lake):
    con = duckdb.connect()
    # instants come as epoch microseconds (exact, and no time-zone module needed)
    tickets = con.execute(
        f"select source, ticket_id, org, desk, service, service_scope, kind, category, subcategory, "
        f"priority, channel, level, status, epoch_us(created_at), epoch_us(assigned_at), "
        f"epoch_us(resolved_at), epoch_us(closed_at), epoch_us(updated_at), "
        f"origin, satisfaction, effort_minutes "
        f"from read_parquet('{lake}/tickets/*/*/*.parquet', hive_partitioning = true)").fetchall()
    cols = ["source", "ticket_id", "org", "desk", "service", "service_scope", "kind", "category",
            "subcategory", "priority", "channel", "level", "status", "created_at", "assigned_at",
            "resolved_at", "closed_at", "updated_at", "origin", "satisfaction", "effort_minutes"]
    tickets = [dict(zip(cols, r)) for r in tickets]
    for t in tickets:
        for k in ("created_at", "assigned_at", "resolved_at", "closed_at", "updated_at"):
            if t[k] is not None:
                t[k] = instant(t[k])
    events = collections.defaultdict(list)
    transfers = set()
    for source, ticket_id, event_id, at, kind, frm, to in con.execute(
            'select source, ticket_id, event_id, epoch_us("at"), kind, from_value, to_value '
            f"from read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)").fetchall():
        if kind == "status":
            events[(source, ticket_id)].append((instant(at), event_id, frm, to))
        elif kind == "transfer":
            transfers.add((source, ticket_id))
    for h in events.values():
        h.sort(key=lambda e: (e[0], e[1]))
    return tickets, events, transfers


def pending_seconds(org, history, a, b):
    total = 0.0
    for i, (at, _, _, to) in enumerate(history):
        if to != "pending":
            continue
        end = history[i + 1][0] if i + 1 < len(history) else b
        total += business_seconds(org, max(at, a), min(end, b))
    return total


def compute(tickets, events, transfers, start, end):
    def in_period(t):
        return t is not None and start <= t < end

    out = {}
    # volume
    vol = collections.Counter()
    for t in tickets:
        if in_period(t["created_at"]):
            vol[(month_of(t["created_at"]), t["org"], t["desk"], t["service"], t["service_scope"], t["kind"], t["channel"])] += 1
    out["volume"] = vol
    # group_service_volume: a school ticket that was forwarded counts as its group ticket
    forwarded_from = {t["origin"] for t in tickets if t["desk"] == "group" and t["origin"]}
    gsv = collections.Counter()
    for t in tickets:
        if in_period(t["created_at"]) and t["service_scope"] == "group":
            if t["desk"] == "school":
                if f'{t["source"]}:{t["ticket_id"]}' in forwarded_from:
                    continue
                path = "kept_at_school"
            else:
                path = "direct" if t["origin"] is None else "forwarded"
            gsv[(month_of(t["created_at"]), t["org"], t["service"], path)] += 1
    out["group_service_volume"] = gsv
    # resolution_time and effort and first_level
    rt = collections.defaultdict(list)
    sl_r = collections.defaultdict(list)
    fl = collections.defaultdict(list)
    eff = collections.defaultdict(list)
    for t in tickets:
        if t["status"] in ("resolved", "closed") and in_period(t["resolved_at"]):
            h = events.get((t["source"], t["ticket_id"]), [])
            wall = (t["resolved_at"] - t["created_at"]).total_seconds() / 3600
            bs = business_seconds(t["org"], t["created_at"], t["resolved_at"]) - pending_seconds(t["org"], h, t["created_at"], t["resolved_at"])
            m = month_of(t["resolved_at"])
            rt[(m, t["desk"], t["priority"])].append((wall, bs / 3600, bs <= SLA[t["priority"]][1]))
            sl_r[m].append((bs / 3600, bs <= SLA[t["priority"]][1]))
            fl[(m, t["desk"])].append(t["level"] == 1)
            eff[(m, t["desk"], t["service_scope"])].append(t["effort_minutes"])
    out["resolution_time"] = {k: {
        "resolved": len(v),
        "mean_h": sum(x[0] for x in v) / len(v),
        "median_h": percentile_cont([x[0] for x in v], 0.5),
        "p90_h": percentile_cont([x[0] for x in v], 0.9),
        "mean_bh": sum(x[1] for x in v) / len(v),
        "median_bh": percentile_cont([x[1] for x in v], 0.5),
        "p90_bh": percentile_cont([x[1] for x in v], 0.9),
        "sla_ttr_rate": sum(x[2] for x in v) / len(v)} for k, v in rt.items()}
    out["first_level"] = {k: {"resolved": len(v), "first_level_rate": sum(v) / len(v)} for k, v in fl.items()}
    out["effort"] = {k: {"resolved": len(v), "effort_min": sum(x for x in v if x is not None),
                         "with_effort": sum(x is not None for x in v)} for k, v in eff.items()}
    # time_to_own
    tto = collections.defaultdict(list)
    sl_o = collections.defaultdict(list)
    for t in tickets:
        if in_period(t["created_at"]) and t["assigned_at"] is not None:
            h = events.get((t["source"], t["ticket_id"]), [])
            bs = business_seconds(t["org"], t["created_at"], t["assigned_at"]) - pending_seconds(t["org"], h, t["created_at"], t["assigned_at"])
            tto[(month_of(t["created_at"]), t["desk"], t["priority"])].append((bs / 3600, bs <= SLA[t["priority"]][0]))
            sl_o[month_of(t["created_at"])].append((bs / 3600, bs <= SLA[t["priority"]][0]))
    out["time_to_own"] = {k: {"owned": len(v), "median_bh": percentile_cont([x[0] for x in v], 0.5),
                              "sla_tto_rate": sum(x[1] for x in v) / len(v)} for k, v in tto.items()}
    out["service_level"] = {
        m: {"resolved": len(sl_r.get(m, [])),
            "median_bh": percentile_cont([x[0] for x in sl_r[m]], 0.5) if sl_r.get(m) else None,
            "p90_bh": percentile_cont([x[0] for x in sl_r[m]], 0.9) if sl_r.get(m) else None,
            "sla_ttr_rate": sum(x[1] for x in sl_r[m]) / len(sl_r[m]) if sl_r.get(m) else None,
            "owned": len(sl_o.get(m, [])),
            "tto_median_bh": percentile_cont([x[0] for x in sl_o[m]], 0.5) if sl_o.get(m) else None,
            "sla_tto_rate": sum(x[1] for x in sl_o[m]) / len(sl_o[m]) if sl_o.get(m) else None}
        for m in set(sl_r) | set(sl_o)}
    # breaches_in_flight: open at the end of the period, by the ticket's own dates
    bif = collections.defaultdict(lambda: [0, 0, 0, 0])
    for t in tickets:
        if t["created_at"] >= end:
            continue
        done = t["resolved_at"] or t["closed_at"]
        if done is None and t["status"] == "canceled":
            done = t["updated_at"] or t["created_at"]
        if done is not None and done < end:
            continue
        h = events.get((t["source"], t["ticket_id"]), [])
        h = [e for e in h if e[0] < end]
        age = business_seconds(t["org"], t["created_at"], end) - pending_seconds(t["org"], h, t["created_at"], end)
        owned = t["assigned_at"] is not None and t["assigned_at"] < end
        c = bif[(t["desk"], t["priority"])]
        c[0] += 1
        c[1] += not owned
        c[2] += (not owned) and age > SLA[t["priority"]][0]
        c[3] += age > SLA[t["priority"]][1]
    out["breaches_in_flight"] = dict(bif)
    # history_coverage
    hc = collections.defaultdict(lambda: [0, 0])
    for t in tickets:
        if in_period(t["created_at"]):
            c = hc[t["source"]]
            c[0] += 1
            c[1] += bool(events.get((t["source"], t["ticket_id"])))
    out["history_coverage"] = dict(hc)
    # reopen_rate
    rr = collections.defaultdict(lambda: [0, 0])
    for key, h in events.items():
        firsts = [e[0] for e in h if e[3] == "resolved"]
        if not firsts or not in_period(min(firsts)):
            continue
        reopened = any(e[2] in ("resolved", "closed") and e[3] not in DONE for e in h)
        c = rr[month_of(min(firsts))]
        c[0] += 1
        c[1] += reopened
    out["reopen_rate"] = dict(rr)
    # satisfaction
    sat = collections.defaultdict(list)
    for t in tickets:
        if t["status"] == "closed" and in_period(t["closed_at"]):
            sat[month_of(t["closed_at"])].append(t["satisfaction"])
    out["satisfaction"] = {k: {"closed": len(v), "answered": sum(x is not None for x in v),
                               "satisfied": sum(x is not None and x >= 4 for x in v)} for k, v in sat.items()}
    # requalification
    rq = collections.defaultdict(lambda: [0, 0])
    for t in tickets:
        if in_period(t["created_at"]):
            c = rq[month_of(t["created_at"])]
            c[0] += 1
            c[1] += (t["source"], t["ticket_id"]) in transfers
    out["requalification"] = dict(rq)
    # recurring incidents: an earlier incident, same org/service/category/subcategory, within 30 days
    groups = collections.defaultdict(list)
    for t in tickets:
        if t["kind"] == "incident":
            groups[(t["org"], t["service"], t["category"], t["subcategory"])].append(t["created_at"])
    ri = collections.defaultdict(lambda: [0, 0])
    rp = collections.defaultdict(lambda: [0, 0])
    for (_, service, category, _), times in groups.items():
        times.sort()
        for i, c in enumerate(times):
            if not in_period(c):
                continue
            j = bisect.bisect_left(times, c)  # first instant equal to c: strictly earlier ones are before j
            recurring = j > 0 and times[j - 1] >= c - dt.timedelta(days=30)
            for r in (ri[month_of(c)], rp[(service, category)]):
                r[0] += 1
                r[1] += recurring
    out["recurring_incidents"] = dict(ri)
    out["recurring_pairs"] = dict(rp)
    # backlog: status at the end of each local day, ticket by ticket
    day0 = start.astimezone(PARIS).date()
    day_end = end.astimezone(PARIS).date()
    ends = []
    d = day0
    while d < day_end:
        ends.append((d, dt.datetime.combine(d + dt.timedelta(days=1), dt.time(0), PARIS).astimezone(UTC)))
        d += dt.timedelta(days=1)
    backlog = {d: [0, 0, 0, 0] for d, _ in ends}
    for t in tickets:
        if t["created_at"] >= end:
            continue
        h = events.get((t["source"], t["ticket_id"]))
        created_day = t["created_at"].astimezone(PARIS).date()
        if h:
            times = [e[0] for e in h]
            if h[-1][3] in DONE and h[-1][0] < start:
                continue
        else:
            stop = None
            if t["status"] in DONE:
                stop = t["resolved_at"] or t["closed_at"] or t["updated_at"] or t["created_at"]
            if stop is not None and stop < start:
                continue
        for d, e in ends:
            if t["created_at"] >= e:
                continue
            if h:
                i = bisect.bisect_left(times, e) - 1  # events strictly before midnight
                status = h[i][3] if i >= 0 else "new"
                is_open = status not in DONE
            else:
                is_open = stop is None or stop >= e
            if is_open:
                age = (d - created_day).days
                b = 0 if age <= 7 else 1 if age <= 30 else 2 if age <= 90 else 3
                backlog[d][b] += 1
    out["backlog"] = backlog
    return out


def main():
    lake, first, last, ours_path = sys.argv[1:5]
    fy, fm = map(int, first.split("-"))
    ly, lm = map(int, last.split("-"))
    start = dt.datetime(fy, fm, 1, tzinfo=PARIS).astimezone(UTC)
    ny, nm = (ly + 1, 1) if lm == 12 else (ly, lm + 1)
    end = dt.datetime(ny, nm, 1, tzinfo=PARIS).astimezone(UTC)
    tickets, events, transfers = load(lake)
    ref = compute(tickets, events, transfers, start, end)
    ours = json.load(open(ours_path))
    problems = []
    checked = 0

    def same(a, b, what, exact=False):
        nonlocal checked
        checked += 1
        if a is None or b is None:
            ok = a is None and b is None
        elif exact:
            ok = a == b
        else:
            ok = abs(a - b) <= 1e-6 * max(1.0, abs(b))
        if not ok:
            problems.append(f"{what}: ticketlake {a}, reference {b}")

    def rows(name, keys):
        return {tuple(r[k] for k in keys): r for r in ours[name]}

    vol = rows("volume", ["month", "org", "desk", "service", "service_scope", "kind", "channel"])
    same(len(vol), len(ref["volume"]), "volume rows", True)
    for k, n in ref["volume"].items():
        same(vol.get(k, {}).get("tickets"), n, f"volume {k}", True)
    gsv = rows("group_service_volume", ["month", "org", "service", "path"])
    same(len(gsv), len(ref["group_service_volume"]), "group_service_volume rows", True)
    for k, n in ref["group_service_volume"].items():
        same(gsv.get(k, {}).get("tickets"), n, f"group_service_volume {k}", True)
    rt = rows("resolution_time", ["month", "desk", "priority"])
    same(len(rt), len(ref["resolution_time"]), "resolution_time rows", True)
    for k, v in ref["resolution_time"].items():
        for col, x in v.items():
            same(rt.get(k, {}).get(col), x, f"resolution_time {k} {col}", col == "resolved")
    tto = rows("time_to_own", ["month", "desk", "priority"])
    for k, v in ref["time_to_own"].items():
        for col, x in v.items():
            same(tto.get(k, {}).get(col), x, f"time_to_own {k} {col}", col == "owned")
    rr = rows("reopen_rate", ["month"])
    for m, (n, r) in ref["reopen_rate"].items():
        same(rr.get((m,), {}).get("first_resolved"), n, f"reopen_rate {m} first_resolved", True)
        same(rr.get((m,), {}).get("reopened"), r, f"reopen_rate {m} reopened", True)
    sat = rows("satisfaction", ["month"])
    for m, v in ref["satisfaction"].items():
        same(sat.get((m,), {}).get("closed"), v["closed"], f"satisfaction {m} closed", True)
        same(sat.get((m,), {}).get("answered"), v["answered"], f"satisfaction {m} answered", True)
        same(sat.get((m,), {}).get("satisfied_rate"), v["satisfied"] / v["answered"] if v["answered"] else None, f"satisfaction {m} satisfied_rate")
    fl = rows("first_level", ["month", "desk"])
    for k, v in ref["first_level"].items():
        same(fl.get(k, {}).get("resolved"), v["resolved"], f"first_level {k} resolved", True)
        same(fl.get(k, {}).get("first_level_rate"), v["first_level_rate"], f"first_level {k} rate")
    rq = rows("requalification", ["month"])
    for m, (n, x) in ref["requalification"].items():
        same(rq.get((m,), {}).get("tickets"), n, f"requalification {m} tickets", True)
        same(rq.get((m,), {}).get("transferred"), x, f"requalification {m} transferred", True)
    ri = rows("recurring_incidents", ["month"])
    for m, (n, r) in ref["recurring_incidents"].items():
        same(ri.get((m,), {}).get("incidents"), n, f"recurring_incidents {m} incidents", True)
        same(ri.get((m,), {}).get("recurring"), r, f"recurring_incidents {m} recurring", True)
    sl = rows("service_level", ["month"])
    same(len(sl), len(ref["service_level"]), "service_level rows", True)
    for m, v in ref["service_level"].items():
        for col, x in v.items():
            same(sl.get((m,), {}).get(col), x, f"service_level {m} {col}", col in ("resolved", "owned"))
    bif = rows("breaches_in_flight", ["desk", "priority"])
    same(len(bif), len(ref["breaches_in_flight"]), "breaches_in_flight rows", True)
    for k, v in ref["breaches_in_flight"].items():
        for col, x in zip(["open_tickets", "unowned", "past_tto", "past_ttr"], v):
            same(bif.get(k, {}).get(col), x, f"breaches_in_flight {k} {col}", True)
    rp = rows("recurring_pairs", ["service", "category"])
    same(len(rp), len(ref["recurring_pairs"]), "recurring_pairs rows", True)
    for k, (n, r) in ref["recurring_pairs"].items():
        same(rp.get(k, {}).get("incidents"), n, f"recurring_pairs {k} incidents", True)
        same(rp.get(k, {}).get("recurring"), r, f"recurring_pairs {k} recurring", True)
    hc = rows("history_coverage", ["source"])
    for k, (n, w) in ref["history_coverage"].items():
        same(hc.get((k,), {}).get("tickets"), n, f"history_coverage {k} tickets", True)
        same(hc.get((k,), {}).get("with_history"), w, f"history_coverage {k} with_history", True)
    ef = rows("effort", ["month", "desk", "service_scope"])
    for k, v in ref["effort"].items():
        same(ef.get(k, {}).get("resolved"), v["resolved"], f"effort {k} resolved", True)
        same(ef.get(k, {}).get("with_effort"), v["with_effort"], f"effort {k} with_effort", True)
        same(ef.get(k, {}).get("effort_min"), v["effort_min"], f"effort {k} effort_min")
    bl = rows("backlog", ["day"])
    same(len(bl), len(ref["backlog"]), "backlog days", True)
    for d, b in ref["backlog"].items():
        r = bl.get((d.isoformat(),), {})
        same(r.get("open_tickets"), sum(b), f"backlog {d} open_tickets", True)
        for col, x in zip(["age_0_7", "age_8_30", "age_31_90", "age_over_90"], b):
            same(r.get(col), x, f"backlog {d} {col}", True)

    print(f"{checked} figures compared, {len(problems)} differ")
    for p in problems[:40]:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
