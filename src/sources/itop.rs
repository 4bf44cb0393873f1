//! iTop (Combodo) through REST/JSON, `webservices/rest.php`, API 1.3 or 1.4.
//!
//! - Tickets: `core/get` on each configured class (`UserRequest`, `Incident`) with an
//!   explicit `output_fields` list (about 40× faster than `*`, which loads every linked
//!   set), filtered on `last_update >= <watermark − overlap>` in iTop's own time zone.
//!   iTop returns tickets newest first, so pages are taken with `id < <lowest id seen>`
//!   rather than by page number, which shifts when tickets arrive during a pull.
//! - History: `CMDBChangeOpCreate` (creation) and `CMDBChangeOpSetAttributeScalar` on
//!   `status`, `team_id` and `priority`, for the tickets of the pull (`objkey IN (…)`), so
//!   each pulled ticket comes with its whole history. Reopens, the first and last
//!   resolutions and pending periods come from these rows, never from
//!   `resolution_date` (overwritten on each re-resolution) or the stopwatches (stale on
//!   open tickets). Stock iTop lets only an Administrator with the REST profile read
//!   history; without that right the pull goes on without events and says so.
//! - Errors: iTop answers HTTP 200 with a code in the JSON (0 OK, 1 unauthorised,
//!   2–4 bad request, 10 version, 11 verb, 13 page, 100 internal); each becomes a message.
//!
//! Mapping (defaults; `[sources.map.*]` overrides):
//!
//! | iTop | canonical |
//! |---|---|
//! | status `new`, `escalated_tto`, `waiting_for_approval`, `approved`, `dispatched`, `redispatched` | `new` |
//! | status `assigned`, `escalated_ttr` | `assigned` |
//! | status `pending` | `pending` |
//! | status `resolved` / `closed` / `rejected` | `resolved` / `closed` / `canceled` |
//! | class `Incident` | kind `incident` |
//! | `request_type` `service_request` (`incident`, `assistance` where the model has them) | kind |
//! | `origin` `mail` / `portal` / `phone` / `chat` / `in_person` / `monitoring` | channel `email` / `portal` / `phone` / `chat` / `in_person` / `other` |
//! | `priority`, `urgency` 1 … 4 | the same (1 highest) |
//! | `org_name` | org (by id or name in `[[orgs]]`) |
//! | `service_name` | service (the catalogue's name) |
//! | `servicesubcategory_name` `Category / Subcategory` | category, subcategory |
//! | `sla_ttr_passed` `no` / `yes` (resolved tickets) | `source_sla_met` true / false |
//! | `user_satisfaction` 1 … 4 (only with `fields.satisfaction`, since stock iTop cannot tell "not answered" from "very satisfied") | 5, 4, 2, 1 |
//! | team name | level (`…n1`/`n2`/`n3`, catalogue owner teams level 2) |

use std::borrow::Cow;
use std::collections::BTreeMap;

// ids and names looked up for every record: the fast hash, not SipHash
use foldhash::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use compact_str::CompactString;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::config::SourceConfig;
use super::http::Http;
use super::json::{EachMember, Fields, Members, Text, share, text};
use super::normalize::{
    Defaults, LocalDates, Pulled, RawChange, RawEvent, RawTicket, Record, scrub,
};
use crate::pseudonym::Pseudonymizer;

pub const DEFAULTS: Defaults = &[
    (
        "status",
        &[
            ("new", "new"),
            ("escalated_tto", "new"),
            ("waiting_for_approval", "new"),
            ("approved", "new"),
            ("dispatched", "new"),
            ("redispatched", "new"),
            ("assigned", "assigned"),
            ("escalated_ttr", "assigned"),
            ("pending", "pending"),
            ("resolved", "resolved"),
            ("closed", "closed"),
            ("rejected", "canceled"),
        ],
    ),
    (
        "kind",
        &[
            ("service_request", "service_request"),
            ("incident", "incident"),
            ("assistance", "assistance"),
        ],
    ),
    (
        "channel",
        &[
            ("mail", "email"),
            ("portal", "portal"),
            ("phone", "phone"),
            ("chat", "chat"),
            ("in_person", "in_person"),
            ("monitoring", "other"),
        ],
    ),
    (
        "satisfaction",
        &[("1", "5"), ("2", "4"), ("3", "2"), ("4", "1")],
    ),
];

/// The history dates' format: iTop writes change-op dates this way whatever its display format.
pub const HISTORY_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Ticket ids per history request.
const HISTORY_CHUNK: usize = 200;

/// Identity fields of a ticket record (pseudonymised before anything is kept).
const IDENTITY_FIELDS: &[&str] = &[
    "caller_id",
    "caller_id_friendlyname",
    "agent_id",
    "agent_id_friendlyname",
];

enum Auth {
    Login {
        user: String,
        password: String,
        basic: bool,
    },
    Token(String),
}

/// A connection to one iTop.
pub struct Itop<'a> {
    source: &'a SourceConfig,
    http: Http,
    endpoint: String,
    auth: Auth,
    pseudo: &'a Pseudonymizer,
    dates: LocalDates,
    decode: super::normalize::DecodeClock,
}

/// An iTop error answer.
#[derive(Debug)]
pub struct ItopError {
    pub code: i64,
    pub message: String,
}

impl<'a> Itop<'a> {
    pub fn new(source: &'a SourceConfig, pseudo: &'a Pseudonymizer) -> Result<Itop<'a>> {
        let base = source
            .url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/');
        let endpoint = if base.ends_with("rest.php") {
            format!("{base}?version={}", source.api_version)
        } else {
            format!("{base}/webservices/rest.php?version={}", source.api_version)
        };
        let auth = match source.secret(&source.token_env, "iTop token")? {
            Some(t) => Auth::Token(t),
            None => Auth::Login {
                user: source
                    .secret(&source.user_env, "iTop login")?
                    .unwrap_or_default(),
                password: source
                    .secret(&source.password_env, "iTop password")?
                    .unwrap_or_default(),
                basic: source.basic_auth,
            },
        };
        Ok(Itop {
            http: Http::new(
                &source.id,
                source.timeout_s,
                source.retries,
                source.backoff_ms,
            )?,
            endpoint,
            auth,
            pseudo,
            dates: LocalDates::new(source.tz()?, HISTORY_DATE_FORMAT),
            source,
            decode: Default::default(),
        })
    }

    /// One REST call; an iTop error code comes back as `Err(Ok(ItopError))`.
    async fn call(&self, what: &str, op: &Value) -> Result<std::result::Result<Value, ItopError>> {
        let body = self.call_raw(what, op).await?;
        self.decode
            .time(|| parse_answer(&body))
            .with_context(|| self.not_json(what))
    }

    fn not_json(&self, what: &str) -> String {
        format!(
            "source '{}': {what}: the answer is not JSON (is `url` the iTop root?)",
            self.source.id
        )
    }

    /// A `core/get` answer read into objects with fields of type `F`; an iTop error
    /// code comes back as `Err(Ok(ItopError))`, like [`Itop::call`].
    fn objects<'b, F: Deserialize<'b>>(
        &self,
        what: &str,
        body: &'b [u8],
    ) -> Result<std::result::Result<Answer<'b, F>, ItopError>> {
        let body = text(body).with_context(|| self.not_json(what))?;
        let answer: Answer<'b, F> =
            serde_json::from_str(body).with_context(|| self.not_json(what))?;
        Ok(match answer.code() {
            0 => Ok(answer),
            code => Err(ItopError {
                code,
                message: answer.message.owned().unwrap_or_default(),
            }),
        })
    }

    /// One REST call's answer body, after its HTTP status.
    async fn call_raw(&self, what: &str, op: &Value) -> Result<bytes::Bytes> {
        let json_data = op.to_string();
        let answer = self
            .http
            .send(what, || {
                let mut form: Vec<(&str, &str)> = vec![("json_data", &json_data)];
                let mut req = self.http.client().post(&self.endpoint);
                match &self.auth {
                    Auth::Login {
                        user,
                        password,
                        basic: true,
                    } => {
                        req = req.basic_auth(user, Some(password));
                    }
                    Auth::Login {
                        user,
                        password,
                        basic: false,
                    } => {
                        form.push(("auth_user", user));
                        form.push(("auth_pwd", password));
                    }
                    Auth::Token(t) => {
                        req = req.header("Auth-Token", t.as_str());
                        form.push(("auth_token", t));
                    }
                }
                req.form(&form)
            })
            .await?;
        if !answer.status.is_success() {
            bail!(
                "source '{}': {what} answered HTTP {} (is `url` the iTop root?)",
                self.source.id,
                answer.status
            );
        }
        Ok(answer.body)
    }

    /// Turns an iTop error into a message for the operator.
    fn fail(&self, what: &str, e: ItopError) -> anyhow::Error {
        let hint = match e.code {
            1 if e.message.contains("Invalid login") => {
                "the login was refused: check the variables named by user_env/password_env or token_env"
            }
            1 if e.message.contains("REST Services User") => {
                "the account lacks the \"REST Services User\" profile"
            }
            1 => "the account lacks a right",
            2..=6 => "the request was malformed (a ticketlake bug: please report it)",
            10 => "this iTop does not offer that API version: set api_version = \"1.3\"",
            11 => "this iTop does not know the operation",
            13 => "invalid page number",
            _ => "iTop could not run the query",
        };
        anyhow::anyhow!(
            "source '{}': {what}: iTop code {} ({}): {hint}",
            self.source.id,
            e.code,
            e.message
        )
    }

    /// Checks credentials and rights: (tickets readable, history readable or why not).
    pub async fn check(&self) -> Result<Vec<(String, std::result::Result<String, String>)>> {
        let mut out = Vec::new();
        for class in &self.source.classes {
            let op = json!({"operation": "core/get", "class": class, "key": format!("SELECT {class}"), "output_fields": "id", "limit": 1, "page": 1});
            let what = format!("core/get {class}");
            match self.call(&what, &op).await? {
                Ok(v) => out.push((
                    format!("tickets ({class})"),
                    Ok(found(&v).to_string() + " readable"),
                )),
                Err(e) if e.code == 1 && e.message.contains("permissions") => {
                    out.push((format!("tickets ({class})"), Err(e.message)))
                }
                Err(e) => return Err(self.fail(&what, e)),
            }
        }
        match self.history_right().await? {
            None => out.push(("history".into(), Ok("readable".into()))),
            Some(why) => out.push(("history".into(), Err(why))),
        }
        out.push((
            "satisfaction".into(),
            if self.source.fields.contains_key("satisfaction") {
                Ok(format!("read from `{}`", self.source.fields["satisfaction"]))
            } else {
                Err("not read: stock iTop cannot tell \"not answered\" from \"very satisfied\"; set fields.satisfaction to read it anyway".into())
            },
        ));
        Ok(out)
    }

    /// None when history can be read, else why not.
    async fn history_right(&self) -> Result<Option<String>> {
        let op = json!({"operation": "core/get", "class": "CMDBChangeOpSetAttributeScalar",
            "key": "SELECT CMDBChangeOpSetAttributeScalar WHERE id = 0", "output_fields": "id", "limit": 1, "page": 1});
        match self
            .call("core/get CMDBChangeOpSetAttributeScalar", &op)
            .await?
        {
            Ok(_) => Ok(None),
            Err(e) if e.code == 1 => Ok(Some(format!(
                "{} (stock iTop lets only an Administrator with the REST Services User profile read history)",
                e.message
            ))),
            Err(e) => Err(self.fail("core/get CMDBChangeOpSetAttributeScalar", e)),
        }
    }

    fn output_fields(&self, class: &str) -> String {
        let mut f: Vec<&str> = vec![
            "ref",
            "org_name",
            "caller_id_friendlyname",
            "team_id_friendlyname",
            "agent_id_friendlyname",
            "status",
            "impact",
            "urgency",
            "priority",
            "origin",
            "service_name",
            "servicesubcategory_name",
            "start_date",
            "assignment_date",
            "resolution_date",
            "close_date",
            "last_update",
            "sla_ttr_passed",
        ];
        if class != "Incident" {
            f.push("request_type");
        }
        for v in self.source.fields.values() {
            if !f.contains(&v.as_str()) {
                f.push(v);
            }
        }
        f.join(",")
    }

    /// Pulls the tickets changed since `since` (UTC µs; everything when None) and their
    /// histories. `progress(done, total)` follows the tickets.
    pub async fn pull(
        &self,
        since: Option<i64>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Pulled> {
        let mut pulled = self.pull_in(since, progress).await?;
        pulled.decode_time = self.decode.total();
        Ok(pulled)
    }

    async fn pull_in(
        &self,
        since: Option<i64>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Pulled> {
        let mut pulled = Pulled::default();
        let teams = self.teams().await?;
        let mut ids_of_class: BTreeMap<String, Vec<(u64, CompactString)>> = BTreeMap::new();
        let mut done = 0u64;
        let mut total = 0u64;
        for class in &self.source.classes {
            let mut cursor: Option<u64> = None;
            let mut seen = HashSet::default();
            loop {
                let mut key = format!("SELECT {class}");
                let mut conds = Vec::new();
                if let Some(s) = since {
                    conds.push(format!("last_update >= '{}'", self.dates.format(s)));
                }
                if let Some(c) = cursor {
                    conds.push(format!("id < {c}"));
                }
                if !conds.is_empty() {
                    key.push_str(" WHERE ");
                    key.push_str(&conds.join(" AND "));
                }
                let op = json!({"operation": "core/get", "class": class, "key": key,
                    "output_fields": self.output_fields(class), "limit": self.source.page_size, "page": 1});
                let what = format!("core/get {class}");
                let body = self.call_raw(&what, &op).await?;
                let (page, found) = self
                    .decode
                    .time(|| self.decode_tickets(class, &what, &body, &mut seen, &mut pulled))?;
                if cursor.is_none() {
                    total += found;
                }
                let Some(page) = page else {
                    break;
                };
                let lowest = page
                    .lowest
                    .unwrap_or(u64::MAX)
                    .min(cursor.unwrap_or(u64::MAX));
                done += page.ids.len() as u64;
                ids_of_class
                    .entry(class.clone())
                    .or_default()
                    .extend(page.ids);
                progress(done, total.max(done));
                if page.objects < self.source.page_size || lowest == 0 {
                    break;
                }
                cursor = Some(lowest);
            }
        }
        // history
        if let Some(why) = self.history_right().await? {
            pulled.history_unavailable = Some(why);
            return Ok(pulled);
        }
        for (class, ids) in &ids_of_class {
            let refs: HashMap<u64, &str> = ids.iter().map(|(i, r)| (*i, r.as_str())).collect();
            for chunk in ids.chunks(HISTORY_CHUNK) {
                let list = chunk
                    .iter()
                    .map(|(i, _)| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                for (op_class, extra, fields) in [
                    (
                        "CMDBChangeOpCreate",
                        String::new(),
                        "id,date,objkey,user_id_friendlyname",
                    ),
                    (
                        "CMDBChangeOpSetAttributeScalar",
                        " AND attcode IN ('status','team_id','priority')".to_string(),
                        "id,date,objkey,attcode,oldvalue,newvalue,user_id_friendlyname",
                    ),
                ] {
                    let key = format!(
                        "SELECT {op_class} WHERE objclass = '{class}' AND objkey IN ({list}){extra}"
                    );
                    let op = json!({"operation": "core/get", "class": op_class, "key": key, "output_fields": fields});
                    let what = format!("core/get {op_class}");
                    let body = self.call_raw(&what, &op).await?;
                    let denied = self.decode.time(|| {
                        self.decode_history(op_class, &what, &body, &refs, &teams, &mut pulled)
                    })?;
                    if let Some(why) = denied {
                        pulled.history_unavailable = Some(why);
                        pulled.events.clear();
                        return Ok(pulled);
                    }
                }
            }
        }
        Ok(pulled)
    }

    /// Team id → name (ids stand for themselves when teams cannot be read).
    async fn teams(&self) -> Result<HashMap<String, String>> {
        let op = json!({"operation": "core/get", "class": "Team", "key": "SELECT Team", "output_fields": "id,name"});
        let mut out = HashMap::default();
        match self.call("core/get Team", &op).await? {
            Ok(v) => {
                if let Some(Value::Object(objects)) = v.get("objects") {
                    for obj in objects.values() {
                        let f = &obj["fields"];
                        if let (Some(id), Some(name)) = (str_of(&f["id"]), str_of(&f["name"])) {
                            out.insert(id, name);
                        }
                    }
                }
            }
            Err(e) if e.code == 1 => {
                tracing::warn!(source = %self.source.id, "teams cannot be read ({}); team ids stand for names", e.message);
            }
            Err(e) => return Err(self.fail("core/get Team", e)),
        }
        Ok(out)
    }

    /// Decodes one answer (its body) to a `core/get` of tickets of `class` into
    /// `pulled`: the page (`None` when the answer has no objects) and the answer's
    /// `Found: N`. A ticket seen on an earlier page is skipped.
    pub fn decode_tickets(
        &self,
        class: &str,
        what: &str,
        body: &bytes::Bytes,
        seen: &mut HashSet<u64>,
        pulled: &mut Pulled,
    ) -> Result<(Option<TicketsPage>, u64)> {
        let answer = self
            .objects::<&RawValue>(what, body)?
            .map_err(|e| self.fail(what, e))?;
        let found = answer.found();
        Ok((
            self.take_tickets(class, body, answer.objects, seen, pulled),
            found,
        ))
    }

    /// Decodes one answer (its body) to a `core/get` of change ops (`op_class`) of the
    /// tickets in `refs` (iTop id → ref) into `pulled`; `Some(why)` when the account may
    /// not read them. The change ops are taken one by one as they are read; if the answer
    /// turns out to be an error or not JSON, none of them stays in `pulled`.
    pub fn decode_history(
        &self,
        op_class: &str,
        what: &str,
        body: &[u8],
        refs: &HashMap<u64, &str>,
        teams: &HashMap<String, String>,
        pulled: &mut Pulled,
    ) -> Result<Option<String>> {
        let (events, rejected) = (pulled.events.len(), pulled.rejected.len());
        let each = EachMember::new(|k: Cow<str>, obj: Object<ChangeOp>| {
            self.take_op(op_class, &k, obj, refs, teams, pulled)
        });
        let body = text(body).with_context(|| self.not_json(what))?;
        let mut de = serde_json::Deserializer::from_str(body);
        let read = AnswerWith(each)
            .deserialize(&mut de)
            .and_then(|answer| de.end().map(|()| answer));
        let outcome = match read {
            Ok((0, _)) => return Ok(None),
            Ok((1, message)) => Ok(Some(message)),
            Ok((code, message)) => Err(self.fail(what, ItopError { code, message })),
            Err(e) => Err(anyhow::Error::new(e).context(self.not_json(what))),
        };
        pulled.events.truncate(events);
        pulled.rejected.truncate(rejected);
        outcome
    }

    /// A page's objects, tickets of `class`, into `pulled`.
    fn take_tickets(
        &self,
        class: &str,
        body: &bytes::Bytes,
        objects: Option<Members<Object<&RawValue>>>,
        seen: &mut HashSet<u64>,
        pulled: &mut Pulled,
    ) -> Option<TicketsPage> {
        let mut objects = objects?.0;
        // in key order, as before (the answer's order is iTop's)
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        pulled.tickets.reserve(objects.len());
        let mut page = TicketsPage {
            objects: objects.len(),
            lowest: None,
            ids: Vec::new(),
        };
        for (k, obj) in objects {
            let id = obj
                .key
                .get()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| k.rsplit("::").next()?.parse().ok());
            let fields = obj
                .fields
                .and_then(|raw| Some((raw, serde_json::from_str::<Fields>(raw.get()).ok()?)));
            let (id, (raw, fields)) = match (id, fields) {
                (Some(id), Some(f)) => (id, f),
                (id, parsed) => {
                    let record = obj.fields.map_or(Value::Null, |raw| {
                        Record::Json {
                            text: share(body, raw.get()),
                            identities: IDENTITY_FIELDS,
                        }
                        .into_value(self.pseudo)
                    });
                    pulled.rejected.push((
                        crate::model::Table::Tickets,
                        crate::lake::validate::Rejected {
                            key: k.to_string(),
                            record: json!({"key": obj.key.to_value(), "fields": record}),
                            reason: if id.is_none() {
                                format!("object '{k}' has no numeric key")
                            } else if parsed.is_none() && obj.fields.is_some() {
                                format!("object '{k}': its fields are not an object")
                            } else {
                                format!("object '{k}' has no fields")
                            },
                        },
                    ));
                    continue;
                }
            };
            page.lowest = Some(page.lowest.map_or(id, |l| l.min(id)));
            if !seen.insert(id) {
                continue;
            }
            let t = self.ticket(class, share(body, raw.get()), &fields);
            page.ids.push((id, t.ticket_id.clone()));
            pulled.tickets.push(t);
        }
        Some(page)
    }

    /// One change op (`k`, its key in the answer) into `pulled`; a row that cannot be
    /// read goes to the quarantine.
    fn take_op(
        &self,
        op_class: &str,
        k: &str,
        obj: Object<ChangeOp>,
        refs: &HashMap<u64, &str>,
        teams: &HashMap<String, String>,
        pulled: &mut Pulled,
    ) {
        let fields = obj.fields.unwrap_or_default();
        match self.event(op_class, &obj.key, &fields, refs, teams) {
            Ok(Some(e)) => pulled.events.push(e),
            Ok(None) => {}
            Err(reason) => {
                let mut record = fields.to_value();
                scrub(&mut record, &["user_id_friendlyname"], self.pseudo);
                pulled.rejected.push((
                    crate::model::Table::Events,
                    crate::lake::validate::Rejected {
                        key: k.to_string(),
                        record,
                        reason: format!("{k}: {reason}"),
                    },
                ))
            }
        }
    }

    /// A ticket object's fields (`record`, their JSON text) as a raw ticket.
    fn ticket(&self, class: &str, record: bytes::Bytes, f: &Fields) -> RawTicket {
        let v = TicketFields::read(f);
        let value = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(CompactString::from);
        let field = |canonical: &str| {
            let attr = self.source.fields.get(canonical)?;
            f.non_empty(attr).map(CompactString::from)
        };
        let pseudonym = |s: Option<&str>| {
            s.filter(|s| !s.is_empty())
                .map(|s| self.pseudo.pseudonym(s))
        };
        let (category, subcategory) = match v.servicesubcategory_name.filter(|s| !s.is_empty()) {
            Some(s) => match s.split_once(" / ") {
                Some((c, sc)) => (Some(c.into()), Some(sc.into())),
                None => (None, Some(s.into())),
            },
            None => (None, None),
        };
        let status = value(v.status);
        let resolved = matches!(status.as_deref(), Some("resolved" | "closed"));
        RawTicket {
            ticket_id: value(v.r#ref).unwrap_or_default(),
            org: value(v.org_name),
            service: value(v.service_name),
            category,
            subcategory,
            kind: if class == "Incident" {
                Some("incident".into())
            } else {
                value(v.request_type)
            },
            impact: value(v.impact),
            urgency: value(v.urgency),
            priority: value(v.priority),
            channel: value(v.origin),
            requester: pseudonym(v.caller_id_friendlyname),
            profile: field("requester_profile"),
            team: value(v.team_id_friendlyname),
            agent: pseudonym(v.agent_id_friendlyname),
            status,
            created_at: value(v.start_date),
            assigned_at: value(v.assignment_date),
            resolved_at: value(v.resolution_date),
            closed_at: value(v.close_date),
            updated_at: value(v.last_update),
            origin: field("origin"),
            satisfaction: field("satisfaction"),
            reopen_count: None,
            source_sla_met: if resolved {
                v.sla_ttr_passed
                    .filter(|s| !s.is_empty())
                    .map(|p| p == "no")
            } else {
                None
            },
            effort_minutes: field("effort_minutes"),
            record: Record::Json {
                text: record,
                identities: IDENTITY_FIELDS,
            },
        }
    }

    fn event(
        &self,
        op_class: &str,
        key: &Text,
        f: &ChangeOp,
        refs: &HashMap<u64, &str>,
        teams: &HashMap<String, String>,
    ) -> std::result::Result<Option<RawEvent>, String> {
        let id = key.get().or_else(|| f.id.get()).ok_or("no id")?;
        let objkey: u64 = f
            .objkey
            .get()
            .and_then(|s| s.parse().ok())
            .ok_or("no objkey")?;
        let ticket_id = refs.get(&objkey).ok_or("not a ticket of this pull")?;
        let at = f.date.non_empty().ok_or("no date")?;
        let team = |v: Option<&str>| {
            v.filter(|s| !s.is_empty() && *s != "0")
                .map(|s| teams.get(s).map_or(s, String::as_str).into())
        };
        let change = if op_class == "CMDBChangeOpCreate" {
            RawChange::Created
        } else {
            let old = f.oldvalue.get();
            let new = f.newvalue.get().unwrap_or_default();
            match f.attcode.get() {
                Some("status") => RawChange::Status(old.map(CompactString::from), new.into()),
                Some("team_id") => RawChange::Team(team(old), team(Some(new))),
                Some("priority") => RawChange::Priority(old.map(CompactString::from), new.into()),
                _ => return Ok(None),
            }
        };
        Ok(Some(RawEvent {
            event_id: id.into(),
            ticket_id: (*ticket_id).into(),
            at: at.into(),
            change,
            actor: f
                .user_id_friendlyname
                .non_empty()
                .map(|s| self.pseudo.pseudonym(s)),
            raw: None,
        }))
    }
}

/// The fields of a ticket object that [`Itop::ticket`] reads, found in one pass over the
/// object (a ticket has about 25; looking each up by name scanned them all every time).
/// A repeated key gives its last value, as [`Fields::get`] does.
#[derive(Default)]
struct TicketFields<'f> {
    r#ref: Option<&'f str>,
    org_name: Option<&'f str>,
    service_name: Option<&'f str>,
    servicesubcategory_name: Option<&'f str>,
    request_type: Option<&'f str>,
    impact: Option<&'f str>,
    urgency: Option<&'f str>,
    priority: Option<&'f str>,
    origin: Option<&'f str>,
    caller_id_friendlyname: Option<&'f str>,
    agent_id_friendlyname: Option<&'f str>,
    team_id_friendlyname: Option<&'f str>,
    status: Option<&'f str>,
    start_date: Option<&'f str>,
    assignment_date: Option<&'f str>,
    resolution_date: Option<&'f str>,
    close_date: Option<&'f str>,
    last_update: Option<&'f str>,
    sla_ttr_passed: Option<&'f str>,
}

impl<'f> TicketFields<'f> {
    fn read(f: &'f Fields) -> TicketFields<'f> {
        let mut v = TicketFields::default();
        for (k, text) in &f.0 {
            let slot = match k.as_ref() {
                "ref" => &mut v.r#ref,
                "org_name" => &mut v.org_name,
                "service_name" => &mut v.service_name,
                "servicesubcategory_name" => &mut v.servicesubcategory_name,
                "request_type" => &mut v.request_type,
                "impact" => &mut v.impact,
                "urgency" => &mut v.urgency,
                "priority" => &mut v.priority,
                "origin" => &mut v.origin,
                "caller_id_friendlyname" => &mut v.caller_id_friendlyname,
                "agent_id_friendlyname" => &mut v.agent_id_friendlyname,
                "team_id_friendlyname" => &mut v.team_id_friendlyname,
                "status" => &mut v.status,
                "start_date" => &mut v.start_date,
                "assignment_date" => &mut v.assignment_date,
                "resolution_date" => &mut v.resolution_date,
                "close_date" => &mut v.close_date,
                "last_update" => &mut v.last_update,
                "sla_ttr_passed" => &mut v.sla_ttr_passed,
                _ => continue,
            };
            *slot = text.get();
        }
        v
    }
}

/// A change op's fields, those asked for.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeOp<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow)]
    pub date: Text<'a>,
    #[serde(borrow)]
    pub objkey: Text<'a>,
    #[serde(borrow)]
    pub attcode: Text<'a>,
    #[serde(borrow)]
    pub oldvalue: Text<'a>,
    #[serde(borrow)]
    pub newvalue: Text<'a>,
    #[serde(borrow)]
    pub user_id_friendlyname: Text<'a>,
}

impl ChangeOp<'_> {
    /// The fields as JSON, for a quarantined record.
    fn to_value(&self) -> Value {
        json!({
            "id": self.id.to_value(),
            "date": self.date.to_value(),
            "objkey": self.objkey.to_value(),
            "attcode": self.attcode.to_value(),
            "oldvalue": self.oldvalue.to_value(),
            "newvalue": self.newvalue.to_value(),
            "user_id_friendlyname": self.user_id_friendlyname.to_value(),
        })
    }
}

/// One object of a `core/get` answer, its fields read as `F`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "F: Deserialize<'de>"))]
pub struct Object<'a, F> {
    #[serde(borrow, default)]
    pub key: Text<'a>,
    #[serde(default = "Option::default")]
    pub fields: Option<F>,
}

/// A `core/get` answer, its objects' fields read as `F`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "F: Deserialize<'de>"))]
pub struct Answer<'a, F> {
    #[serde(borrow, default)]
    pub code: Text<'a>,
    #[serde(borrow, default)]
    pub message: Text<'a>,
    #[serde(borrow, default = "Option::default")]
    pub objects: Option<Members<'a, Object<'a, F>>>,
}

impl<F> Answer<'_, F> {
    /// iTop's code (0 OK); -1 when there is none.
    pub fn code(&self) -> i64 {
        code_of(&self.code)
    }

    /// `Found: N` of the message.
    pub fn found(&self) -> u64 {
        self.message
            .get()
            .and_then(|m| m.strip_prefix("Found: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// An answer's `code` (0 OK); -1 when there is none.
fn code_of(code: &Text) -> i64 {
    code.get().and_then(|c| c.parse().ok()).unwrap_or(-1)
}

/// A `core/get` answer whose objects are read by a seed (an [`EachMember`]) rather than
/// collected: its code (-1 when there is none) and message. A repeated key counts once
/// (the last `code` or `message`, the first `objects`).
struct AnswerWith<S>(S);

impl<'de, S: DeserializeSeed<'de, Value = ()>> DeserializeSeed<'de> for AnswerWith<S> {
    type Value = (i64, String);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de, Value = ()>> Visitor<'de> for AnswerWith<S> {
    type Value = (i64, String);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an iTop answer")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let (mut code, mut message) = (Text::default(), Text::default());
        let mut objects = Some(self.0);
        while let Some(k) = map.next_key::<Text<'de>>()? {
            match k.get() {
                Some("code") => code = map.next_value()?,
                Some("message") => message = map.next_value()?,
                Some("objects") if objects.is_some() => {
                    map.next_value_seed(objects.take().expect("not read yet"))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((code_of(&code), message.owned().unwrap_or_default()))
    }
}

/// What one page of tickets gave.
#[derive(Debug)]
pub struct TicketsPage {
    /// Objects in the answer.
    pub objects: usize,
    /// The lowest numeric id among them (the next page's cursor).
    pub lowest: Option<u64>,
    /// (iTop id, ref) of the tickets taken.
    pub ids: Vec<(u64, CompactString)>,
}

/// An answer's body: the JSON, or iTop's error (code ≠ 0, HTTP 200 all the same).
pub fn parse_answer(body: &[u8]) -> Result<std::result::Result<Value, ItopError>> {
    let value: Value = serde_json::from_slice(body)?;
    let code = value.get("code").and_then(Value::as_i64).unwrap_or(-1);
    if code == 0 {
        return Ok(Ok(value));
    }
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(Err(ItopError { code, message }))
}

/// `Found: N` of an answer.
fn found(v: &Value) -> u64 {
    v.get("message")
        .and_then(Value::as_str)
        .and_then(|m| m.strip_prefix("Found: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A JSON scalar as text (iTop sends numbers as strings, but not always).
pub fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
