#!/usr/bin/env python3
"""The KPI set of ticketlake computed by DuckDB from the same Parquet files, timed side by
side with `ticketlake kpi`, and compared figure by figure. Not part of the tests.

DuckDB runs the very SQL of `queries/kpi/` and `queries/views/` (the same definitions),
with its dialect's spelling of a few functions, and ticketlake's functions written as
DuckDB macros:
- `local_day`, `local_month`, `local_date`: DuckDB's ICU time zones;
- `business_micros(org, a, b)`: F(b) − F(a), where F(t) is the business time of the org's
  calendar from a fixed origin to t: a per-org, per-day table (opening instants and the
  business time of all the days before) looked up by the local day of t, so each call is
  two equality lookups rather than a walk over days. Calendars, orgs, services and SLA
  targets are read from the config (`ticketlake init --out FILE` writes the default).

    pip install duckdb==2.0.0 python-dateutil
    python3 benches/duckdb_kpis.py --lake /tmp/lake-1m --from 2025-01 --to 2025-12 \\
        --ticketlake target/release/ticketlake [--threads 2] [--runs 3]

Each engine runs in its own child process (so each peak memory is its own), in turn,
`--runs` times; the script prints wall time and peak memory of both, their ratio, and
checks that every KPI row is equal (counts exactly, other figures to 1e-6 relative).
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from zoneinfo import ZoneInfo

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = os.path.join(HERE, "..", "queries")
KPI_ORDER = [
    "volume", "group_service_volume", "first_level", "time_to_own", "resolution_time",
    "service_level", "breaches_in_flight", "backlog", "reopen_rate", "requalification",
    "recurring_incidents", "recurring_pairs", "satisfaction", "effort", "history_coverage",
]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def holidays(year, kind):
    from dateutil.easter import easter

    if kind == "none":
        return set()
    e = easter(year)
    days = {dt.date(year, 1, 1), e + dt.timedelta(days=1), dt.date(year, 5, 1),
            dt.date(year, 5, 8), e + dt.timedelta(days=39), e + dt.timedelta(days=50),
            dt.date(year, 7, 14), dt.date(year, 8, 15), dt.date(year, 11, 1),
            dt.date(year, 11, 11), dt.date(year, 12, 25)}
    if kind == "alsace-moselle":
        days |= {e - dt.timedelta(days=2), dt.date(year, 12, 26)}
    return days


def calendar_days(cal, first, last):
    """(local day number, open µs, close µs, business µs of the days before) per day."""
    tz = ZoneInfo(cal["timezone"])
    working = {DAYS.index(d) for d in cal["days"]}
    closed = {dt.date.fromisoformat(d) for d in cal.get("closed", [])}
    opens = dt.time.fromisoformat(cal["opens"])
    closes = dt.time.fromisoformat(cal["closes"])
    hol = {}
    rows, cum = [], 0
    epoch = dt.date(1970, 1, 1)
    day = first
    while day <= last:
        if day.year not in hol:
            hol[day.year] = holidays(day.year, cal["holidays"])
        midnight = int(dt.datetime.combine(day, dt.time(0), tz).timestamp() * 1_000_000)
        if day.weekday() in working and day not in hol[day.year] and day not in closed:
            o = int(dt.datetime.combine(day, opens, tz).timestamp() * 1_000_000)
            c = int(dt.datetime.combine(day, closes, tz).timestamp() * 1_000_000)
        else:
            o = c = midnight
        rows.append(((day - epoch).days, o, c, cum))
        cum += c - o
        day += dt.timedelta(days=1)
    return rows


def to_duckdb(sql):
    """ticketlake's DataFusion SQL in DuckDB's spelling."""
    sql = sql.replace("make_array(", "list_value(")
    sql = re.sub(r"arrow_cast\(arrow_cast\((\w+), 'Int32'\), 'Date32'\)",
                 r"(date '1970-01-01' + cast(\1 as integer))", sql)

    def int64(m):
        inner = m.group(1)
        return f"epoch_us({inner})" if re.fullmatch(r"[\w.]+_at", inner) else f"cast({inner} as bigint)"

    sql = re.sub(r"arrow_cast\(((?:[^()]|\([^()]*\))*), 'Int64'\)", int64, sql)
    assert "arrow_cast" not in sql, sql
    return sql


def read_sql(path):
    with open(path) as f:
        return f.read().strip().rstrip(";")


def duckdb_side(args):
    import duckdb

    with open(args.config, "rb") as f:
        config = tomllib.load(f)
    con = duckdb.connect()
    con.execute(f"set threads = {args.threads}")
    con.execute("set TimeZone = 'UTC'")
    con.execute("set integer_division = true")  # as DataFusion: int / int is an int
    lake = os.path.abspath(args.lake)
    for table in ["tickets", "events"]:
        con.execute(f"""create view {table} as select * from read_parquet(
            '{lake}/{table}/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)""")
    tz = config.get("timezone", "Europe/Paris")
    con.execute(f"create macro local_date(t) as cast(timezone('{tz}', t) as date)")
    con.execute(f"create macro local_day(t) as (cast(timezone('{tz}', t) as date) - date '1970-01-01')")
    con.execute(f"create macro local_month(t) as strftime(timezone('{tz}', t), '%Y-%m')")

    # the reference tables
    con.execute("create table services (service varchar, service_scope varchar, owner_team varchar)")
    con.executemany("insert into services values (?, ?, ?)",
                    [(s["name"], s["scope"], s["owner_team"]) for s in config["services"]])
    con.execute("create table orgs (org varchar, name varchar, calendar varchar, headcount uinteger)")
    con.executemany("insert into orgs values (?, ?, ?, ?)",
                    [(o["id"], o["name"], o["calendar"], o.get("headcount")) for o in config["orgs"]])
    con.execute("create table sla_targets (priority utinyint, tto_min double, ttr_h double, tto_s double, ttr_s double)")
    con.executemany("insert into sla_targets values (?, ?, ?, ?, ?)",
                    [(t["priority"], t["tto_min"], t["ttr_h"], t["tto_min"] * 60.0, t["ttr_h"] * 3600.0)
                     for t in config["sla"]])

    # business time: per org (every org of the lake; unknown ones get the default
    # calendar) and local day, over the lake's years and one on each side
    calendar_of = {o["id"]: o["calendar"] for o in config["orgs"]}
    default = config.get("default_calendar", "france")
    lake_orgs = [r[0] for r in con.execute("select distinct org from tickets where org is not null").fetchall()]
    lo, hi = con.execute("select year(min(e.at)), year(max(e.at)) from events e").fetchone()
    first, last = dt.date((lo or 2000) - 1, 1, 1), dt.date((hi or 2000) + 1, 12, 31)
    by_cal = {}
    days_csv = os.path.join(tempfile.mkdtemp(), "org_days.csv")
    with open(days_csv, "w") as f:
        for org in sorted(set(lake_orgs) | set(calendar_of)):
            cal = calendar_of.get(org, default)
            if cal not in by_cal:
                by_cal[cal] = calendar_days(config["calendars"][cal], first, last)
            f.writelines(f"{org},{d},{o},{c},{cum}\n" for d, o, c, cum in by_cal[cal])
    con.execute(f"""create table org_days as select * from read_csv('{days_csv}', header = false,
        columns = {{'org': 'varchar', 'day': 'integer', 'open_us': 'bigint', 'close_us': 'bigint', 'cum_us': 'bigint'}})""")
    con.execute("""create macro business_f(o, t) as (
        select d.cum_us + greatest(0, least(epoch_us(t), d.close_us) - d.open_us)
        from org_days d where d.org = o and d.day = local_day(t))""")
    con.execute("""create macro business_micros(o, a, b) as (
        case when o is null or a is null or b is null then null
             when b <= a then 0
             else business_f(o, b) - business_f(o, a) end)""")
    con.execute("create macro business_seconds(o, a, b) as business_micros(o, a, b) / 1e6")

    queries = args.duckdb_queries
    for view in ["status_intervals", "ticket_history", "pending_periods"]:
        path = os.path.join(queries, "views", view + ".sql")
        if os.path.exists(path):
            con.execute(f"create view {view} as " + to_duckdb(read_sql(path)))
    start, end = bounds(args.period_from, args.period_to, tz)
    out = {}
    for name in KPI_ORDER:
        sql = to_duckdb(read_sql(os.path.join(queries, "kpi", name + ".sql")))
        used = set(re.findall(r"\$(\w+)", re.sub(r"--[^\n]*", "", sql)))
        t0 = time.monotonic()
        cur = con.execute(sql, {k: v for k, v in {"start": start, "end": end}.items() if k in used})
        cols = [d[0] for d in cur.description]
        out[name] = [dict(zip(cols, row)) for row in cur.fetchall()]
        print(f"DuckDB {name}: {time.monotonic() - t0:.2f} s", file=sys.stderr)
    return out


def bounds(first, last, tz):
    z = ZoneInfo(tz)
    y, m = map(int, first.split("-"))
    start = dt.datetime(y, m, 1, tzinfo=z)
    y, m = map(int, last.split("-"))
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return start, dt.datetime(y, m, 1, tzinfo=z)


def same(a, b):
    if isinstance(a, (dt.date, dt.datetime)):
        a = a.isoformat()
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return str(a) == str(b)


def compare(ours, theirs):
    problems = 0
    for name in KPI_ORDER:
        a, b = ours.get(name, []), theirs.get(name, [])
        if len(a) != len(b):
            print(f"{name}: {len(a)} rows in ticketlake, {len(b)} in DuckDB")
            problems += 1
            continue
        for i, (ra, rb) in enumerate(zip(a, b)):
            for k, v in ra.items():
                if not same(rb.get(k), v):
                    if problems < 20:
                        print(f"{name} row {i} {k}: ticketlake {v!r}, DuckDB {rb.get(k)!r}")
                    problems += 1
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", required=True)
    p.add_argument("--from", dest="period_from", required=True)
    p.add_argument("--to", dest="period_to", required=True)
    p.add_argument("--ticketlake", default="target/release/ticketlake")
    p.add_argument("--config", help="ticketlake.toml (default: the built-in one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--duckdb-queries", default=QUERIES,
                   help="the queries/ folder DuckDB runs (default: this repository's); "
                   "another spelling of the same definitions, e.g. one that reads events "
                   "instead of the stored ticket_history, which DuckDB computes each time")
    p.add_argument("--duckdb-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.config is None:
        args.config = os.path.join(tempfile.mkdtemp(), "ticketlake.toml")
        subprocess.run([args.ticketlake, "init", "--out", args.config], check=True,
                       stdout=subprocess.DEVNULL)
    if args.duckdb_only:
        json.dump(duckdb_side(args), sys.stdout, default=str)
        return 0
    tmp = tempfile.mkdtemp()
    ours_cmd = [args.ticketlake, "kpi", "--lake", args.lake, "--from", args.period_from,
                "--to", args.period_to, "--format", "json", "--config", args.config]
    theirs_cmd = [sys.executable, os.path.abspath(__file__), "--duckdb-only", "--lake", args.lake,
                  "--from", args.period_from, "--to", args.period_to, "--config", args.config,
                  "--threads", str(args.threads), "--duckdb-queries", args.duckdb_queries]
    figures = {"ticketlake": [], "duckdb": []}
    for _ in range(args.runs):
        for engine, cmd in [("ticketlake", ours_cmd), ("duckdb", theirs_cmd)]:
            timing = ["/usr/bin/time", "-f", "%e %M", "-o", os.path.join(tmp, engine + ".time")]
            t0 = time.monotonic()
            with open(os.path.join(tmp, engine + ".json"), "w") as out:
                subprocess.run(timing + cmd, stdout=out, check=True)
            wall = time.monotonic() - t0
            with open(os.path.join(tmp, engine + ".time")) as f:
                peak_mib = int(f.read().split()[-1]) / 1024
            figures[engine].append((wall, peak_mib))
            print(f"{engine:>10}: {wall:7.2f} s, {peak_mib:7.0f} MiB", flush=True)
    med = {e: sorted(f)[len(f) // 2] for e, f in figures.items()}
    print(f"median wall: ticketlake {med['ticketlake'][0]:.2f} s, DuckDB {med['duckdb'][0]:.2f} s; "
          f"DuckDB / ticketlake = {med['duckdb'][0] / med['ticketlake'][0]:.2f}")
    with open(os.path.join(tmp, "ticketlake.json")) as f:
        ours = json.load(f)
    with open(os.path.join(tmp, "duckdb.json")) as f:
        theirs = json.load(f)
    problems = compare(ours, theirs)
    rows = sum(len(v) for v in ours.values())
    print(f"{rows} KPI rows compared: " + ("all equal" if problems == 0 else f"{problems} differences"))
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
