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

// ids and names looked up for every record: the fast hash, not SipHash
use foldhash::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use base64::Engine;
use compact_str::CompactString;
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeSeed;
use serde_json::Value;
use serde_json::value::RawValue;

use super::config::SourceConfig;
use super::http::Http;
use super::itop::str_of;
use super::json::{EachElement, Fields, Text, share, text};
use super::normalize::{
    Defaults, LocalDates, Pulled, RawChange, RawEvent, RawTicket, Record, scrub,
};
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
/// Tickets whose `Log` answers are decoded together.
const LOGS_DECODED_AT_ONCE: usize = 64;

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
    ) -> Result<(Value, Option<String>)> {
        let (body, range) = self.get_body(what, path, session).await?;
        let Some(body) = body else {
            return Ok((Value::Null, None));
        };
        let v = self
            .decode
            .time(|| serde_json::from_slice(&body))
            .with_context(|| self.not_json(what))?;
        Ok((v, range))
    }

    fn not_json(&self, what: &str) -> String {
        format!(
            "source '{}': {what}: the answer is not JSON",
            self.source.id
        )
    }

    /// A GET's body and `Content-Range`; no body past the last page
    /// (`ERROR_RANGE_EXCEED_TOTAL`).
    async fn get_body(
        &self,
        what: &str,
        path: &str,
        session: &str,
    ) -> Result<(Option<bytes::Bytes>, Option<String>)> {
        let a = self
            .http
            .send(what, || {
                self.request(reqwest::Method::GET, path, Some(session))
            })
            .await?;
        if a.status.as_u16() == 400
            && Self::error_text(&a.body).contains("ERROR_RANGE_EXCEED_TOTAL")
        {
            return Ok((None, None));
        }
        if !a.status.is_success() {
            bail!(
                "source '{}': {what} answered {}: {}",
                self.source.id,
                a.status,
                Self::error_text(&a.body)
            );
        }
        Ok((Some(a.body), a.content_range))
    }

    /// The items of a list answer read as `T`: none when the answer is JSON but not a
    /// list, an error when it is not JSON.
    fn list<'b, T: Deserialize<'b>>(&self, what: &str, body: &'b [u8]) -> Result<Vec<T>> {
        let body = text(body).with_context(|| self.not_json(what))?;
        match serde_json::from_str::<Vec<T>>(body) {
            Ok(items) => Ok(items),
            Err(e) if e.is_data() => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| self.not_json(what)),
        }
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
            let (_, range) = self
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
                .and_then(|(v, _)| v.as_array()?.first()?.get("id").and_then(str_of));
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
        let mut seen = HashSet::default();
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
                let (body, range) = self.get_body("search/Ticket", &path, token).await?;
                let (n, count) = self.decode.time(|| match &body {
                    Some(body) => self.take_rows(body, deleted, &mut seen, &mut pulled),
                    None => Ok((0, None)),
                })?;
                let total = range
                    .as_deref()
                    .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok())
                    .or(count);
                let read = pulled.tickets.len();
                progress(read as u64, total.unwrap_or(0).max(read) as u64);
                start += page;
                if n < page || total.is_some_and(|t| start >= t) {
                    break;
                }
            }
        }
        // satisfaction of the pulled tickets
        let ids: HashSet<&str> = pulled
            .tickets
            .iter()
            .map(|t| t.ticket_id.as_str())
            .collect();
        let mut satisfaction: HashMap<String, CompactString> = HashMap::default();
        let mut start = 0usize;
        loop {
            let path = format!("TicketSatisfaction/?range={start}-{}", start + page - 1);
            let (body, range) = self.get_body("TicketSatisfaction", &path, token).await?;
            let Some(body) = body else { break };
            let n = self
                .decode
                .time(|| self.take_surveys(&body, &ids, &mut satisfaction))?;
            start += page;
            let total = range
                .as_deref()
                .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok());
            if n < page || total.is_some_and(|t| start >= t) {
                break;
            }
        }
        drop(ids);
        for t in &mut pulled.tickets {
            t.satisfaction = satisfaction.remove(t.ticket_id.as_str());
        }
        // their histories, a few at a time
        let ids: Vec<CompactString> = pulled.tickets.iter().map(|t| t.ticket_id.clone()).collect();
        let logs = futures::stream::iter(ids)
            .map(|id| async move {
                let mut pages = Vec::new();
                let mut start = 0usize;
                loop {
                    let path = format!("Ticket/{id}/Log?range={start}-{}", start + 999);
                    let (body, range) = self.get_body("Ticket Log", &path, token).await?;
                    let Some(body) = body else { break };
                    let total = range
                        .as_deref()
                        .and_then(|r| r.rsplit('/').next()?.parse::<usize>().ok());
                    // without a total, the page's length tells whether another follows
                    let n = match total {
                        Some(_) => None,
                        None => Some(self.decode.time(|| {
                            self.list::<serde::de::IgnoredAny>("Ticket Log", &body)
                                .map(|l| l.len())
                        })?),
                    };
                    pages.push(body);
                    start += 1000;
                    if n.is_some_and(|n| n < 1000) || total.is_some_and(|t| start >= t) {
                        break;
                    }
                }
                anyhow::Ok((id, pages))
            })
            .buffered(self.source.concurrency);
        futures::pin_mut!(logs);
        let mut history_error = None;
        // decoded a few tickets at a time: reading the decode clock costs about a
        // microsecond, a tenth of a ticket's decoding
        let mut ready: Vec<(CompactString, Vec<bytes::Bytes>)> =
            Vec::with_capacity(LOGS_DECODED_AT_ONCE);
        let decode_ready = |ready: &mut Vec<(CompactString, Vec<bytes::Bytes>)>,
                            pulled: &mut Pulled| {
            self.decode.time(|| {
                ready
                    .drain(..)
                    .try_for_each(|(id, pages)| self.events(&id, &pages, pulled))
            })
        };
        while let Some(r) = logs.next().await {
            match r {
                Ok(answer) => {
                    ready.push(answer);
                    if ready.len() == LOGS_DECODED_AT_ONCE {
                        decode_ready(&mut ready, &mut pulled)?;
                    }
                }
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
        decode_ready(&mut ready, &mut pulled)?;
        if let Some(why) = history_error {
            pulled.events.clear();
            pulled.history_unavailable = Some(why);
        }
        Ok(pulled)
    }

    /// Takes the rows of one `search/Ticket` answer as raw tickets (a ticket seen before
    /// is skipped; a row that is not an object goes to the quarantine): the number of
    /// rows in the answer and its `totalcount`.
    pub fn take_rows(
        &self,
        body: &bytes::Bytes,
        deleted: bool,
        seen: &mut HashSet<String>,
        pulled: &mut Pulled,
    ) -> Result<(usize, Option<usize>)> {
        let answer: SearchAnswer =
            serde_json::from_str(text(body).with_context(|| self.not_json("search/Ticket"))?)
                .with_context(|| self.not_json("search/Ticket"))?;
        let rows = answer.data.unwrap_or_default();
        pulled.tickets.reserve(rows.len());
        for raw in &rows {
            match serde_json::from_str::<Fields>(raw.get()) {
                Ok(f) => {
                    let row = Row::read(&f);
                    if seen.insert(row.0[Row::ID].unwrap_or_default().to_string()) {
                        pulled
                            .tickets
                            .push(self.ticket(share(body, raw.get()), &row, deleted));
                    }
                }
                Err(e) => pulled.rejected.push((
                    Table::Tickets,
                    Rejected {
                        key: format!("search/Ticket row {}", seen.len() + 1),
                        record: serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                        reason: format!("a search row is not an object ({e})"),
                    },
                )),
            }
        }
        let total = answer.totalcount.get().and_then(|t| t.parse().ok());
        Ok((rows.len(), total))
    }

    /// Takes the answered surveys of the tickets in `ids` from one `TicketSatisfaction`
    /// answer (its body): the number of items in it.
    pub fn take_surveys(
        &self,
        body: &[u8],
        ids: &HashSet<&str>,
        out: &mut HashMap<String, CompactString>,
    ) -> Result<usize> {
        let surveys: Vec<Survey> = self.list("TicketSatisfaction", body)?;
        for s in &surveys {
            let Some(t) = s.tickets_id.get() else {
                continue;
            };
            let answered = s.date_answered.non_empty().is_some();
            if answered
                && ids.contains(t)
                && let Some(x) = s.satisfaction_scaled_to_5.get().or(s.satisfaction.get())
            {
                out.insert(t.to_string(), x.into());
            }
        }
        Ok(surveys.len())
    }

    /// One search row (keyed by search-option id) as a raw ticket, without its
    /// satisfaction; `deleted` rows come from the trash.
    fn ticket(&self, record: bytes::Bytes, row: &Row, deleted: bool) -> RawTicket {
        let get = |k: usize| row.0[k].filter(|s| !s.is_empty());
        let owned = |k: usize| get(k).map(CompactString::from);
        let category = get(Row::CATEGORY).unwrap_or_default();
        let mut parts = category.split(" > ").map(str::trim);
        let service = parts
            .next()
            .filter(|s| !s.is_empty())
            .map(CompactString::from);
        let cat = parts.next().map(CompactString::from);
        let rest: Vec<&str> = parts.collect();
        let sub = (!rest.is_empty()).then(|| rest.join(" > ").into());
        let entity = get(Row::ENTITY).map(|e| e.rsplit(" > ").next().unwrap_or(e).trim().into());
        // the first of a multi-valued column
        fn first(v: Option<&str>) -> Option<&str> {
            v.map(|s| s.split("$$##$$").next().unwrap_or("").trim())
                .filter(|s| !s.is_empty())
        }
        RawTicket {
            ticket_id: owned(Row::ID).unwrap_or_default(),
            record: Record::Json {
                text: record,
                identities: &["4", "5"],
            },
            org: entity,
            service,
            category: cat,
            subcategory: sub,
            kind: owned(Row::TYPE),
            impact: owned(Row::IMPACT),
            urgency: owned(Row::URGENCY),
            priority: owned(Row::PRIORITY),
            channel: owned(Row::CHANNEL),
            requester: first(get(Row::REQUESTER)).map(|s| self.pseudo.pseudonym(s)),
            profile: None,
            team: first(get(Row::GROUP)).map(CompactString::from),
            agent: first(get(Row::TECHNICIAN)).map(|s| self.pseudo.pseudonym(s)),
            status: if deleted {
                Some("canceled".into())
            } else {
                owned(Row::STATUS)
            },
            created_at: owned(Row::OPENED),
            assigned_at: None,
            resolved_at: owned(Row::SOLVED),
            closed_at: owned(Row::CLOSED),
            updated_at: owned(Row::UPDATED),
            origin: None,
            satisfaction: None,
            reopen_count: None,
            source_sla_met: None,
            effort_minutes: get(Row::DURATION)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|s| compact_str::format_compact!("{}", s / 60.0)),
        }
    }

    /// One ticket's `Log` rows (its answer pages) as raw events, in time order; a row
    /// that cannot be read goes to the quarantine.
    pub fn events<B: AsRef<[u8]>>(
        &self,
        ticket_id: &str,
        pages: &[B],
        pulled: &mut Pulled,
    ) -> Result<()> {
        // only the rows that say something read here are kept (a ticket's log has rows
        // for every field changed), as they are read; a page that is JSON but not a list
        // of rows gives none, as `list` does
        let mut items: Vec<(u64, Says, LogRow)> = Vec::new();
        for page in pages {
            let body = text(page.as_ref()).with_context(|| self.not_json("Ticket Log"))?;
            let kept = items.len();
            let each = EachElement::<_, LogRow>::new(|row| {
                if let Some(says) = row.says() {
                    let id = row.id.get().and_then(|s| s.parse().ok()).unwrap_or(0);
                    items.push((id, says, row));
                }
            });
            let mut de = serde_json::Deserializer::from_str(body);
            match each.deserialize(&mut de).and_then(|()| de.end()) {
                Ok(()) => {}
                Err(e) if e.is_data() => items.truncate(kept),
                Err(e) => return Err(e).with_context(|| self.not_json("Ticket Log")),
            }
        }
        // in time order, then by id (read as a number)
        fn key<'r>((id, _, row): &'r (u64, Says, LogRow)) -> (&'r str, u64) {
            (row.date_mod.get().unwrap_or_default(), *id)
        }
        items.sort_by(|a, b| key(a).cmp(&key(b)));
        let mut status: Option<CompactString> = None;
        // the same person often writes several rows in turn (one form saved): their
        // pseudonym is taken again rather than looked up among every identity met
        let mut last_actor: Option<(CompactString, CompactString)> = None;
        for (_, says, item) in items {
            let change = match says {
                Says::Created => RawChange::Created,
                Says::Status => RawChange::Status(
                    item.old_value.get().map(CompactString::from),
                    item.new_value
                        .get()
                        .map(CompactString::from)
                        .unwrap_or_default(),
                ),
                Says::Deleted => RawChange::Status(status.clone(), "canceled".into()),
                Says::Group => {
                    RawChange::Team(None, item.new_value.get().map(|v| strip_id(v).into()))
                }
            };
            match &change {
                RawChange::Created => status = Some("1".into()),
                RawChange::Status(_, to) => status = Some(to.clone()),
                _ => {}
            }
            let Some(id) = item.id.get() else {
                let mut record = item.to_value();
                scrub(&mut record, &["user_name"], self.pseudo);
                pulled.rejected.push((
                    Table::Events,
                    Rejected {
                        key: format!("{ticket_id}:?"),
                        record,
                        reason: "log row without id".into(),
                    },
                ));
                continue;
            };
            let actor = item
                .user_name
                .get()
                .map(strip_id)
                .filter(|u| !u.is_empty())
                .map(|u| match &last_actor {
                    Some((name, pseudonym)) if name == u => pseudonym.clone(),
                    _ => {
                        let pseudonym = self.pseudo.pseudonym(u);
                        last_actor = Some((u.into(), pseudonym.clone()));
                        pseudonym
                    }
                });
            pulled.events.push(RawEvent {
                event_id: id.into(),
                ticket_id: ticket_id.into(),
                at: item
                    .date_mod
                    .get()
                    .map(CompactString::from)
                    .unwrap_or_default(),
                change,
                actor,
                raw: None,
            });
        }
        Ok(())
    }
}

/// A `search/Ticket` answer: its rows, each kept as JSON text.
#[derive(Debug, Deserialize)]
pub struct SearchAnswer<'a> {
    #[serde(borrow, default)]
    pub totalcount: Text<'a>,
    #[serde(borrow, default)]
    pub data: Option<Vec<&'a RawValue>>,
}

/// The columns of a `search/Ticket` row that [`Glpi::ticket`] reads (search-option ids),
/// found in one pass over the row (a row has about 20; looking each up by id scanned
/// them all every time). A repeated key gives its last value, as [`Fields::get`] does.
struct Row<'f>([Option<&'f str>; 17]);

impl<'f> Row<'f> {
    const ID: usize = 0;
    const CATEGORY: usize = 1;
    const ENTITY: usize = 2;
    const TYPE: usize = 3;
    const IMPACT: usize = 4;
    const URGENCY: usize = 5;
    const PRIORITY: usize = 6;
    const CHANNEL: usize = 7;
    const REQUESTER: usize = 8;
    const GROUP: usize = 9;
    const TECHNICIAN: usize = 10;
    const STATUS: usize = 11;
    const OPENED: usize = 12;
    const SOLVED: usize = 13;
    const CLOSED: usize = 14;
    const UPDATED: usize = 15;
    const DURATION: usize = 16;

    fn read(f: &'f Fields) -> Row<'f> {
        let mut row = Row([None; 17]);
        for (k, text) in &f.0 {
            let slot = match k.as_ref() {
                "2" => Row::ID,
                "7" => Row::CATEGORY,
                "80" => Row::ENTITY,
                "14" => Row::TYPE,
                "11" => Row::IMPACT,
                "10" => Row::URGENCY,
                "3" => Row::PRIORITY,
                "9" => Row::CHANNEL,
                "4" => Row::REQUESTER,
                "8" => Row::GROUP,
                "5" => Row::TECHNICIAN,
                "12" => Row::STATUS,
                "15" => Row::OPENED,
                "17" => Row::SOLVED,
                "16" => Row::CLOSED,
                "19" => Row::UPDATED,
                "45" => Row::DURATION,
                _ => continue,
            };
            row.0[slot] = text.get();
        }
        row
    }
}

/// A `Log` row, the fields read here.
#[derive(Debug, Deserialize)]
pub struct LogRow<'a> {
    #[serde(borrow, default)]
    pub id: Text<'a>,
    #[serde(borrow, default)]
    pub date_mod: Text<'a>,
    #[serde(borrow, default)]
    pub linked_action: Text<'a>,
    #[serde(borrow, default)]
    pub id_search_option: Text<'a>,
    #[serde(borrow, default)]
    pub itemtype_link: Text<'a>,
    #[serde(borrow, default)]
    pub old_value: Text<'a>,
    #[serde(borrow, default)]
    pub new_value: Text<'a>,
    #[serde(borrow, default)]
    pub user_name: Text<'a>,
}

/// What a `Log` row says that is read here.
#[derive(Debug, Clone, Copy)]
enum Says {
    /// The ticket was created.
    Created,
    /// Its status changed.
    Status,
    /// It went to the trash (it is canceled).
    Deleted,
    /// A group was assigned to it.
    Group,
}

impl LogRow<'_> {
    /// What the row says, if it is one read here.
    fn says(&self) -> Option<Says> {
        let number = |t: &Text| t.get().and_then(|s| s.parse::<i64>().ok());
        match number(&self.linked_action).unwrap_or(-1) {
            LOG_CREATE_ITEM => Some(Says::Created),
            LOG_FIELD if number(&self.id_search_option) == Some(SO_STATUS) => Some(Says::Status),
            LOG_DELETE_ITEM => Some(Says::Deleted),
            LOG_ADD_RELATION if self.itemtype_link.get() == Some("Group") => Some(Says::Group),
            _ => None,
        }
    }

    /// The fields read, as JSON, for a quarantined record.
    fn to_value(&self) -> Value {
        serde_json::json!({
            "id": self.id.to_value(),
            "date_mod": self.date_mod.to_value(),
            "linked_action": self.linked_action.to_value(),
            "id_search_option": self.id_search_option.to_value(),
            "itemtype_link": self.itemtype_link.to_value(),
            "old_value": self.old_value.to_value(),
            "new_value": self.new_value.to_value(),
            "user_name": self.user_name.to_value(),
        })
    }
}

/// A `TicketSatisfaction` item, the fields read here.
#[derive(Debug, Deserialize)]
pub struct Survey<'a> {
    #[serde(borrow, default)]
    pub tickets_id: Text<'a>,
    #[serde(borrow, default)]
    pub date_answered: Text<'a>,
    #[serde(borrow, default)]
    pub satisfaction_scaled_to_5: Text<'a>,
    #[serde(borrow, default)]
    pub satisfaction: Text<'a>,
}

/// `"name (12)"` → `"name"`.
pub fn strip_id(v: &str) -> &str {
    // a byte search: `rfind` with a string sets up a two-way searcher for these short names
    match v.as_bytes().windows(2).rposition(|w| w == b" (") {
        Some(i)
            if v.ends_with(')') && v[i + 2..v.len() - 1].chars().all(|c| c.is_ascii_digit()) =>
        {
            &v[..i]
        }
        _ => v,
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_id_drops_a_trailing_numeric_id_only() {
        assert_eq!(strip_id("Support N1 (12)"), "Support N1");
        assert_eq!(strip_id("Support (N1) (3)"), "Support (N1)", "the last one");
        assert_eq!(strip_id("Support (N1)"), "Support (N1)", "not a number");
        assert_eq!(strip_id("Support N1 (12"), "Support N1 (12");
        assert_eq!(strip_id("Support N1 ()"), "Support N1", "no digits at all");
        assert_eq!(strip_id(" (7)"), "");
        assert_eq!(strip_id("é (7)"), "é");
        assert_eq!(strip_id(""), "");
    }

    #[test]
    fn a_search_row_is_read_in_one_pass_as_by_id() {
        let f: Fields = serde_json::from_str(
            r#"{"2":"41","7":"Mail > boîte","12":5,"999":"x","2":"42","15":null,"45":""}"#,
        )
        .unwrap();
        let row = Row::read(&f);
        assert_eq!(row.0[Row::ID], Some("42"), "the last of a repeated key");
        assert_eq!(row.0[Row::ID], f.get("2"));
        assert_eq!(row.0[Row::CATEGORY], Some("Mail > boîte"));
        assert_eq!(row.0[Row::STATUS], Some("5"), "a number as its text");
        assert_eq!(row.0[Row::OPENED], None, "null");
        assert_eq!(row.0[Row::DURATION], Some(""));
        assert_eq!(row.0[Row::SOLVED], None, "absent");
        // every slot is read from its own id
        let ids = [
            "2", "7", "80", "14", "11", "10", "3", "9", "4", "8", "5", "12", "15", "17", "16",
            "19", "45",
        ];
        for (slot, id) in ids.iter().enumerate() {
            let text = format!(r#"{{"{id}":"v{slot}"}}"#);
            let f: Fields = serde_json::from_str(&text).unwrap();
            let row = Row::read(&f);
            let read: Vec<usize> = (0..17).filter(|&k| row.0[k].is_some()).collect();
            assert_eq!(read, [slot], "search option {id}");
            assert_eq!(row.0[slot], Some(format!("v{slot}").as_str()));
        }
    }
}
