//! GLPI through its legacy REST API (`apirest.php`, GLPI 9.5–11).
//!
//! - Session: `initSession` with HTTP Basic or `user_token`, plus `App-Token` when API
//!   clients are configured; `changeActiveEntities` to the configured entity with its
//!   sub-entities; `killSession` at the end, after an error too.
//! - Tickets: `search/Ticket` with the columns below (`forcedisplay`), the criterion
//!   `date_mod` (19) after the watermark, sorted by id ascending with an explicit
//!   `range`, so tickets created during the pull land after the pages already read.
//!   `Content-Range` gives the total; `ERROR_RANGE_EXCEED_TOTAL` (400) is the end. A
//!   second pass with `is_deleted=1` reads the trash: a deleted ticket is `canceled`.
//! - History: `Ticket/:id/Log` for each pulled ticket (a few at a time: GLPI has no
//!   cross-ticket history feed). Status changes are search option 12, team changes are
//!   `Group` relations added (linked action 15), creation is linked action 20 and a
//!   deletion 13. Reopens and the last resolution come from here, never from `solvedate`,
//!   which GLPI empties when a ticket is reopened.
//! - Satisfaction: `TicketSatisfaction` (answered surveys), `satisfaction_scaled_to_5`.
//!
//! Columns read (search option ids of `listSearchOptions/Ticket`): 2 id, 1 title,
//! 12 status, 14 type, 3 priority, 10 urgency, 11 impact, 15 opening date, 16 close date,
//! 17 solve date, 19 last update, 80 entity, 7 category, 9 request source, 4 requester,
//! 5 technician, 8 technician group, 45 total duration (seconds).
//!
//! Mapping (defaults; `[sources.map.*]` overrides):
//!
//! | GLPI | canonical |
//! |---|---|
//! | status 1 new / 2 assigned / 3 planned / 4 pending / 5 solved / 6 closed | new / assigned / assigned / pending / resolved / closed |
//! | in the trash | canceled |
//! | type 1 / 2 | incident / service_request |
//! | priority 6 major, 5 very high, 4 high, 3 medium, 2 low, 1 very low | 1, 1, 2, 3, 4, 4 (GLPI counts up, ticketlake down) |
//! | urgency, impact 5 … 1 | 1, 2, 3, 4, 4 |
//! | request source Helpdesk / E-Mail / Phone / Direct / Written / Chat / Other | portal / email / phone / in_person / other / chat / other |
//! | category `Service > Category > Subcategory` | service, category, subcategory |
//! | entity `Root > Name` | org (by id or name in `[[orgs]]`; else the source's org) |
//! | total duration, seconds | effort_minutes |

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use base64::Engine;
use futures::StreamExt;
use serde_json::Value;

use super::config::SourceConfig;
use super::http::Http;
use super::itop::str_of;
use super::normalize::{Defaults, LocalDates, Pulled, RawChange, RawEvent, RawTicket, scrub};
use crate::lake::validate::Rejected;
use crate::model::Table;
use crate::pseudonym::Pseudonymizer;

pub const DEFAULTS: Defaults = &[
    (
        "status",
        &[
            ("1", "new"),
            ("2", "assigned"),
            ("3", "assigned"),
            ("4", "pending"),
            ("5", "resolved"),
            ("6", "closed"),
        ],
    ),
    ("kind", &[("1", "incident"), ("2", "service_request")]),
    (
        "priority",
        &[
            ("6", "1"),
            ("5", "1"),
            ("4", "2"),
            ("3", "3"),
            ("2", "4"),
            ("1", "4"),
        ],
    ),
    (
        "urgency",
        &[("5", "1"), ("4", "2"), ("3", "3"), ("2", "4"), ("1", "4")],
    ),
    (
        "impact",
        &[("5", "1"), ("4", "2"), ("3", "3"), ("2", "4"), ("1", "4")],
    ),
    (
        "channel",
        &[
            ("Helpdesk", "portal"),
            ("E-Mail", "email"),
            ("Phone", "phone"),
            ("Direct", "in_person"),
            ("Written", "other"),
            ("Chat", "chat"),
            ("Other", "other"),
        ],
    ),
];

/// The search columns, in `forcedisplay` order.
pub const COLUMNS: &[u32] = &[
    2, 1, 12, 14, 3, 10, 11, 15, 16, 17, 19, 80, 7, 9, 4, 5, 8, 45,
];

/// GLPI's `Log` linked actions used here.
pub const LOG_FIELD: i64 = 0;
pub const LOG_DELETE_ITEM: i64 = 13;
pub const LOG_ADD_RELATION: i64 = 15;
pub const LOG_DEL_RELATION: i64 = 16;
pub const LOG_CREATE_ITEM: i64 = 20;
/// The status search option.
pub const SO_STATUS: i64 = 12;

/// A GLPI session.
pub struct Glpi<'a> {
    source: &'a SourceConfig,
    http: Http,
    base: String,
    app_token: Option<String>,
    authorization: String,
    pseudo: &'a Pseudonymizer,
    dates: LocalDates,
    decode: super::normalize::DecodeClock,
}

impl<'a> Glpi<'a> {
    pub fn new(source: &'a SourceConfig, pseudo: &'a Pseudonymizer) -> Result<Glpi<'a>> {
        let authorization = match source.secret(&source.token_env, "GLPI user token")? {
            Some(t) => format!("user_token {t}"),
            None => {
                let user = source
                    .secret(&source.user_env, "GLPI login")?
                    .unwrap_or_default();
                let pwd = source
                    .secret(&source.password_env, "GLPI password")?
                    .unwrap_or_default();
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pwd}"))
                )
            }
        };
        Ok(Glpi {
            http: Http::new(
                &source.id,
                source.timeout_s,
                source.retries,
                source.backoff_ms,
            )?,
            base: source
                .url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            app_token: source.secret(&source.app_token_env, "GLPI App-Token")?,
            authorization,
            pseudo,
            dates: LocalDates::new(source.tz()?, &source.date_format),
            source,
            decode: Default::default(),
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .client()
            .request(method, format!("{}/{path}", self.base));
        if let Some(t) = &self.app_token {
            req = req.header("App-Token", t);
        }
        match session {
            Some(s) => req.header("Session-Token", s),
            None => req.header("Authorization", &self.authorization),
        }
    }

    /// GLPI's error answer `["ERROR_…", "message"]` as text.
    fn error_text(body: &[u8]) -> String {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(a)) => a.iter().filter_map(str_of).collect::<Vec<_>>().join(": "),
            _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        }
    }

    async fn get_json(
        &self,
        what: &str,
        path: &str,
        session: &str,
    ) -> Result<(Value, Option<String>, u16)> {
        let a = self
            .http
            .send(what, || {
                self.request(reqwest::Method::GET, path, Some(session))
            })
            .await?;
        let status = a.status.as_u16();
        if status == 400 && Self::error_text(&a.body).contains("ERROR_RANGE_EXCEED_TOTAL") {
            return Ok((Value::Null, None, status));
        }
        if !a.status.is_success() {
            bail!(
                "source '{}': {what} answered {}: {}",
                self.source.id,
                a.status,
                Self::error_text(&a.body)
            );
        }
        let v = self
            .decode
            .time(|| serde_json::from_slice(&a.body))
            .with_context(|| {
                format!(
                    "source '{}': {what}: the answer is not JSON",
                    self.source.id
                )
            })?;
        Ok((v, a.content_range, status))
    }

    /// Opens a session (and sets the active entity).
    async fn open(&self) -> Result<String> {
        let a = self
            .http
            .send("initSession", || {
                self.request(reqwest::Method::GET, "initSession", None)
            })
            .await?;
        if !a.status.is_success() {
            bail!(
                "source '{}': initSession answered {}: {} (check the credentials named in the config)",
                self.source.id,
                a.status,
                Self::error_text(&a.body)
            );
        }
        let v: Value = serde_json::from_slice(&a.body).with_context(|| {
            format!(
                "source '{}': initSession: the answer is not JSON",
                self.source.id
            )
        })?;
        let token = v
            .get("session_token")
            .and_then(Value::as_str)
            .with_context(|| {
                format!(
                    "source '{}': initSession gave no session_token",
                    self.source.id
                )
            })?
            .to_string();
        if let Some(entity) = self.source.entity {
            let body = serde_json::json!({"entities_id": entity, "is_recursive": true}).to_string();
            let a = self
                .http
                .send("changeActiveEntities", || {
                    self.request(reqwest::Method::POST, "changeActiveEntities", Some(&token))
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                })
                .await;
            match a {
                Ok(a) if a.status.is_success() => {}
                Ok(a) => {
                    self.close(&token).await;
                    bail!(
                        "source '{}': changeActiveEntities to entity {entity} answered {}: {}",
                        self.source.id,
                        a.status,
                        Self::error_text(&a.body)
                    );
                }
                Err(e) => {
                    self.close(&token).await;
                    return Err(e);
                }
            }
        }
        Ok(token)
    }

    async fn close(&self, token: &str) {
        let r = self
            .http
            .send("killSession", || {
                self.request(reqwest::Method::GET, "killSession", Some(token))
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(source = %self.source.id, "killSession failed: {e}");
        }
    }

    /// Checks credentials and rights.
    pub async fn check(&self) -> Result<Vec<(String, std::result::Result<String, String>)>> {
        let token = self.open().await?;
        let mut out = vec![("session".to_string(), Ok("opened".to_string()))];
        let result = async {
            let (_, range, _) = self
                .get_json(
                    "search/Ticket",
                    "search/Ticket?range=0-0&forcedisplay[0]=2",
                    &token,
                )
                .await?;
            out.push((
                "tickets".into(),
                Ok(format!("readable ({})", range.unwrap_or_default())),
            ));
            let first = self.get_json("Ticket", "Ticket/?range=0-0", &token).await;
            let id = first
                .ok()
                .and_then(|(v, _, _)| v.as_array()?.first()?.get("id").and_then(str_of));
            match id {
                Some(id) => match self
                    .get_json("Ticket Log", &format!("Ticket/{id}/Log?range=0-0"), &token)
                    .await
                {
                    Ok(_) => out.push(("history".into(), Ok("readable".into()))),
                    Err(e) => out.push(("history".into(), Err(format!("{e:#}")))),
                },
                None => out.push(("history".into(), Err("no ticket to try".into()))),
            }
            match self
                .get_json(
                    "TicketSatisfaction",
                    "TicketSatisfaction/?range=0-0",
                    &token,
                )
                .await
            {
                Ok(_) => out.push(("satisfaction".into(), Ok("readable".into()))),
                Err(e) => out.push(("satisfaction".into(), Err(format!("{e:#}")))),
            }
            anyhow::Ok(())
        }
        .await;
        self.close(&token).await;
        result?;
        Ok(out)
    }

    /// Pulls the tickets changed since `since` (UTC µs) and their histories.
    pub async fn pull(
        &self,
        since: Option<i64>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Pulled> {
        let token = self.open().await?;
        let result = self.pull_in(&token, since, progress).await;
        self.close(&token).await;
        let mut pulled = result?;
        pulled.decode_time = self.decode.total();
        Ok(pulled)
    }

    async fn pull_in(
        &self,
        token: &str,
        since: Option<i64>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Pulled> {
        let mut pulled = Pulled::default();
        let mut rows: Vec<(Value, bool)> = Vec::new();
        let mut seen = HashSet::new();
        let page = self.source.page_size;
        for deleted in [false, true] {
            let mut start = 0usize;
            let mut query = String::from("search/Ticket?");
            for (i, c) in COLUMNS.iter().enumerate() {
                query.push_str(&format!("forcedisplay[{i}]={c}&"));
            }
            if let Some(s) = since {
                let local = self.dates.format(s);
                query.push_str(&format!(
                    "criteria[0][field]=19&criteria[0][searchtype]=morethan&criteria[0][value]={}&",
                    urlencode(&local)
                ));
            }
            query.push_str(&format!(
                "is_deleted={}&sort=2&order=ASC",
                u8::from(deleted)
            ));
            loop {
                let path = format!("{query}&range={start}-{}", start + page - 1);
                let (v, range, _) = self.get_json("search/Ticket", &path, token).await?;
                let total = range
                    .as_deref()
                    .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok())
                    .or_else(|| {
                        v.get("totalcount")
                            .and_then(Value::as_u64)
                            .map(|n| n as usize)
                    });
                let n = self
                    .decode
                    .time(|| take_rows(&v, deleted, &mut seen, &mut rows));
                progress(rows.len() as u64, total.unwrap_or(0).max(rows.len()) as u64);
                start += page;
                if n < page || total.is_some_and(|t| start >= t) {
                    break;
                }
            }
        }
        // satisfaction of the pulled tickets
        let ids: HashSet<String> = rows.iter().filter_map(|(r, _)| str_of(&r["2"])).collect();
        let mut satisfaction: HashMap<String, String> = HashMap::new();
        let mut start = 0usize;
        loop {
            let path = format!("TicketSatisfaction/?range={start}-{}", start + page - 1);
            let (v, range, _) = self.get_json("TicketSatisfaction", &path, token).await?;
            let Some(n) = take_satisfaction(&v, &ids, &mut satisfaction) else {
                break;
            };
            start += page;
            let total = range
                .as_deref()
                .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok());
            if n < page || total.is_some_and(|t| start >= t) {
                break;
            }
        }
        // the tickets
        self.decode.time(|| {
            for (row, deleted) in &rows {
                let t = self.ticket(row, *deleted, &satisfaction);
                pulled.tickets.push(t);
            }
        });
        // their histories, a few at a time
        let ids: Vec<String> = pulled.tickets.iter().map(|t| t.ticket_id.clone()).collect();
        let logs = futures::stream::iter(ids)
            .map(|id| async move {
                let mut all = Vec::new();
                let mut start = 0usize;
                loop {
                    let path = format!("Ticket/{id}/Log?range={start}-{}", start + 999);
                    let (v, range, _) = self.get_json("Ticket Log", &path, token).await?;
                    let Some(items) = v.as_array() else { break };
                    let n = items.len();
                    all.extend(items.iter().cloned());
                    start += 1000;
                    let total = range
                        .as_deref()
                        .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok());
                    if n < 1000 || total.is_some_and(|t| start >= t) {
                        break;
                    }
                }
                anyhow::Ok((id, all))
            })
            .buffered(self.source.concurrency);
        futures::pin_mut!(logs);
        let mut history_error = None;
        while let Some(r) = logs.next().await {
            match r {
                Ok((id, items)) => self.decode.time(|| self.events(&id, items, &mut pulled)),
                Err(e) => {
                    let text = format!("{e:#}");
                    if text.contains("403") || text.contains("ERROR_RIGHT_MISSING") {
                        history_error = Some(text);
                        break;
                    }
                    return Err(e);
                }
            }
        }
        if let Some(why) = history_error {
            pulled.events.clear();
            pulled.history_unavailable = Some(why);
        }
        Ok(pulled)
    }

    /// One search row (keyed by search-option id) as a raw ticket; `deleted` rows come
    /// from the trash.
    pub fn ticket(
        &self,
        row: &Value,
        deleted: bool,
        satisfaction: &HashMap<String, String>,
    ) -> RawTicket {
        let get = |k: &str| str_of(&row[k]).filter(|s| !s.is_empty());
        let id = get("2").unwrap_or_default();
        let category = get("7").unwrap_or_default();
        let mut parts = category.split(" > ").map(str::trim);
        let service = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        let cat = parts.next().map(str::to_string);
        let rest: Vec<&str> = parts.collect();
        let sub = (!rest.is_empty()).then(|| rest.join(" > "));
        let entity = get("80").map(|e| e.rsplit(" > ").next().unwrap_or(&e).trim().to_string());
        let first = |v: Option<String>| {
            v.map(|s| s.split("$$##$$").next().unwrap_or("").trim().to_string())
        };
        let mut record = row.clone();
        scrub(&mut record, &["4", "5"], self.pseudo);
        RawTicket {
            ticket_id: id.clone(),
            record,
            org: entity,
            service,
            category: cat,
            subcategory: sub,
            kind: get("14"),
            impact: get("11"),
            urgency: get("10"),
            priority: get("3"),
            channel: get("9"),
            requester: first(get("4"))
                .filter(|s| !s.is_empty())
                .map(|s| self.pseudo.pseudonym(&s)),
            profile: None,
            team: first(get("8")).filter(|s| !s.is_empty()),
            agent: first(get("5"))
                .filter(|s| !s.is_empty())
                .map(|s| self.pseudo.pseudonym(&s)),
            status: if deleted {
                Some("canceled".into())
            } else {
                get("12")
            },
            created_at: get("15"),
            assigned_at: None,
            resolved_at: get("17"),
            closed_at: get("16"),
            updated_at: get("19"),
            origin: None,
            satisfaction: satisfaction.get(&id).cloned(),
            reopen_count: None,
            source_sla_met: None,
            effort_minutes: get("45")
                .and_then(|s| s.parse::<f64>().ok())
                .map(|s| (s / 60.0).to_string()),
        }
    }

    /// One ticket's `Log` rows as raw events, in time order; a row that cannot be read
    /// goes to the quarantine.
    pub fn events(&self, ticket_id: &str, mut items: Vec<Value>, pulled: &mut Pulled) {
        let key = |v: &Value| {
            (
                str_of(&v["date_mod"]).unwrap_or_default(),
                str_of(&v["id"])
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
            )
        };
        items.sort_by_key(key);
        let mut status: Option<String> = None;
        for item in items {
            let action = item["linked_action"]
                .as_i64()
                .or_else(|| str_of(&item["linked_action"])?.parse().ok())
                .unwrap_or(-1);
            let option = item["id_search_option"]
                .as_i64()
                .or_else(|| str_of(&item["id_search_option"])?.parse().ok())
                .unwrap_or(-1);
            let link = str_of(&item["itemtype_link"]).unwrap_or_default();
            let change = match action {
                LOG_CREATE_ITEM => Some(RawChange::Created),
                LOG_FIELD if option == SO_STATUS => Some(RawChange::Status(
                    str_of(&item["old_value"]),
                    str_of(&item["new_value"]).unwrap_or_default(),
                )),
                LOG_DELETE_ITEM => Some(RawChange::Status(status.clone(), "canceled".into())),
                LOG_ADD_RELATION if link == "Group" => Some(RawChange::Team(
                    None,
                    str_of(&item["new_value"]).map(|v| strip_id(&v)),
                )),
                _ => None,
            };
            let Some(change) = change else { continue };
            match &change {
                RawChange::Created => status = Some("1".into()),
                RawChange::Status(_, to) => status = Some(to.clone()),
                _ => {}
            }
            let Some(id) = str_of(&item["id"]) else {
                let mut item = item;
                scrub(&mut item, &["user_name"], self.pseudo);
                pulled.rejected.push((
                    Table::Events,
                    Rejected {
                        key: format!("{ticket_id}:?"),
                        record: item,
                        reason: "log row without id".into(),
                    },
                ));
                continue;
            };
            let actor = str_of(&item["user_name"])
                .map(|u| strip_id(&u))
                .filter(|u| !u.is_empty())
                .map(|u| self.pseudo.pseudonym(&u));
            pulled.events.push(RawEvent {
                event_id: id,
                ticket_id: ticket_id.to_string(),
                at: str_of(&item["date_mod"]).unwrap_or_default(),
                change,
                actor,
                raw: None,
            });
        }
    }
}

/// Takes the rows of one `search/Ticket` answer (a ticket seen before is skipped); the
/// number of rows in the answer.
pub fn take_rows(
    v: &Value,
    deleted: bool,
    seen: &mut HashSet<String>,
    rows: &mut Vec<(Value, bool)>,
) -> usize {
    let Some(Value::Array(data)) = v.get("data") else {
        return 0;
    };
    for row in data {
        let id = str_of(&row["2"]).unwrap_or_default();
        if seen.insert(id) {
            rows.push((row.clone(), deleted));
        }
    }
    data.len()
}

/// Takes the answered surveys of the tickets in `ids` from one `TicketSatisfaction`
/// answer; the number of items, or `None` when the answer is not a list.
pub fn take_satisfaction(
    v: &Value,
    ids: &HashSet<String>,
    out: &mut HashMap<String, String>,
) -> Option<usize> {
    let items = v.as_array()?;
    for s in items {
        let Some(t) = str_of(&s["tickets_id"]) else {
            continue;
        };
        let answered = str_of(&s["date_answered"]).is_some_and(|d| !d.is_empty());
        if answered
            && ids.contains(&t)
            && let Some(x) =
                str_of(&s["satisfaction_scaled_to_5"]).or_else(|| str_of(&s["satisfaction"]))
        {
            out.insert(t, x);
        }
    }
    Some(items.len())
}

/// `"name (12)"` → `"name"`.
pub fn strip_id(v: &str) -> String {
    match v.rfind(" (") {
        Some(i)
            if v.ends_with(')') && v[i + 2..v.len() - 1].chars().all(|c| c.is_ascii_digit()) =>
        {
            v[..i].to_string()
        }
        _ => v.to_string(),
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
