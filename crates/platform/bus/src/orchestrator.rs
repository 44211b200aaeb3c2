//! The saga orchestrator: a saga definition is an ordered list of steps, each an action a
//! service performs and, when it has an effect to undo, its compensation. The orchestrating
//! service persists each instance (`sagas`, `saga_transitions`, see [`crate::saga`]) and
//! drives it with **commands** it writes to its outbox (so they leave with the change that
//! caused them) and **replies** the target services write to theirs:
//!
//! - a command is `<orchestrator>.saga_command.v1` with [`Command`]: the saga, the step, the
//!   action (or compensation) and the saga's data; a target handles those addressed to it,
//!   once (its inbox), and answers with a [`Reply`] (`<target>.saga_reply.v1`);
//! - a successful reply moves the saga to the next step (its command goes out in the same
//!   transaction) or completes it;
//! - a failed reply, or a step past its deadline, turns the saga to `compensating`: the steps
//!   done so far are compensated in reverse order (a step that timed out too, since its outcome
//!   is unknown), each retried until it succeeds; then `compensated`, with the first failure as
//!   the reason;
//! - deadlines are durable timers: [`tick`] acts on the instances past theirs, so sagas resume
//!   after a restart wherever they were.
//!
//! Replies are handled once (recorded in the inbox in the same transaction), and every move is
//! conditional on the state and step it leaves, so a duplicate or late reply changes nothing.

use std::time::Duration;

use medcov_store::outbox::{self, Actor, Event};
use medcov_store::{Database, StoreError, Tx, Writes};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Envelope;
use crate::saga::{self, Change, Saga, SagaState};

/// One step of a saga.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub name: &'static str,
    /// The service that performs it.
    pub target: &'static str,
    pub action: &'static str,
    /// What undoes it; `None` when it has nothing to undo.
    pub compensation: Option<&'static str>,
    /// How long the target has to answer (and between retries of the compensation).
    pub timeout: Duration,
}

/// A kind of saga.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub kind: &'static str,
    /// The orchestrator's command event type, `<service>.saga_command.v1`.
    pub command_type: &'static str,
    pub steps: &'static [Step],
}

/// What a command carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub saga_id: Uuid,
    pub kind: String,
    pub step: String,
    /// The action, or the compensation.
    pub command: String,
    pub target: String,
    pub subject_id: Uuid,
    /// The saga's data: its input and each step's result so far.
    pub data: serde_json::Value,
}

/// What a target answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub saga_id: Uuid,
    pub step: String,
    pub command: String,
    pub ok: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Command {
    /// The command in an envelope, if it is one for `target`.
    pub fn addressed(envelope: &Envelope, target: &str) -> Option<Command> {
        if !envelope.event_type.ends_with(".saga_command.v1") {
            return None;
        }
        serde_json::from_value::<Command>(envelope.payload.clone()).ok().filter(|c| c.target == target)
    }

    /// Whether the envelope is a command for `target`, without reading the rest of it.
    pub fn is_for(envelope: &Envelope, target: &str) -> bool {
        envelope.event_type.ends_with(".saga_command.v1")
            && envelope.payload.get("target").and_then(serde_json::Value::as_str) == Some(target)
    }

    /// Whether the envelope is the command `name` (an action or a compensation) for `target`,
    /// without reading the rest of it.
    pub fn is(envelope: &Envelope, target: &str, name: &str) -> bool {
        Command::is_for(envelope, target)
            && envelope.payload.get("command").and_then(serde_json::Value::as_str) == Some(name)
    }

    /// The saga's input (what it was started with), as the target reads it; an error says
    /// why it cannot be read.
    pub fn input<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.data["input"].clone())
            .map_err(|e| format!("a {} saga command this service cannot read: {e}", self.kind))
    }

    /// The reply to this command, as an event of type `reply_type` (`<target>.saga_reply.v1`).
    pub fn reply(
        &self,
        reply_type: &'static str,
        tenant: Uuid,
        ok: bool,
        reason: Option<String>,
        data: serde_json::Value,
    ) -> Event {
        let reply =
            Reply { saga_id: self.saga_id, step: self.step.clone(), command: self.command.clone(), ok, reason, data };
        Event {
            event_type: reply_type,
            aggregate_type: "saga",
            aggregate_id: self.saga_id,
            tenant_id: tenant,
            payload: serde_json::to_value(reply).unwrap_or_default(),
        }
    }
}

impl Definition {
    /// The shortest time a step has to answer.
    pub fn shortest_timeout(&self) -> Duration {
        self.steps.iter().map(|s| s.timeout).min().unwrap_or(Duration::MAX)
    }

    fn index(&self, step: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == step)
    }

    /// The command event for `step` of a saga.
    pub fn command(&self, saga: &Saga, step: &Step, command: &str) -> Event {
        let payload = Command {
            saga_id: saga.id,
            kind: self.kind.to_owned(),
            step: step.name.to_owned(),
            command: command.to_owned(),
            target: step.target.to_owned(),
            subject_id: saga.subject_id,
            data: saga.data.clone(),
        };
        Event {
            event_type: self.command_type,
            aggregate_type: "saga",
            aggregate_id: saga.id,
            tenant_id: saga.tenant_id.unwrap_or_else(Uuid::nil),
            payload: serde_json::to_value(payload).unwrap_or_default(),
        }
    }

    /// The first step done before `index` (or `index` itself when `including`) that has a
    /// compensation, walking back.
    fn compensable_before(&self, index: usize, including: bool) -> Option<&Step> {
        let end = if including { index + 1 } else { index };
        self.steps[..end.min(self.steps.len())].iter().rev().find(|s| s.compensation.is_some())
    }
}

/// Starts a saga of `def` for `subject` with the change that starts it (so the flow begins
/// with it): gathers in `writes`, to run in that change's transaction, the instance at its
/// first step, its first transition and its first command in the outbox. Returns the saga's
/// id.
pub fn start(
    writes: &mut Writes,
    actor: &Actor,
    def: &Definition,
    (subject, tenant): (Uuid, Uuid),
    input: serde_json::Value,
) -> Uuid {
    let first = def.steps[0];
    let deadline = OffsetDateTime::now_utc() + first.timeout;
    let instance = saga::new(def.kind, subject, Some(tenant), first.name, Some(deadline), initial_data(input));
    let span = crate::trace::saga_span(
        Some(crate::stream_of(def.command_type)),
        def.kind,
        instance.id,
        "running",
        first.name,
        Some(first.action),
        Some(actor),
    );
    span.in_scope(|| {
        saga::gather_start(writes, &instance);
        let actor = crate::trace::actor_here(actor);
        outbox::gather_event(writes, &actor, &def.command(&instance, &first, first.action));
    });
    instance.id
}

/// A saga's data at its start: `{"input": ..., "results": {}, "compensations": {}}`; each
/// step's successful reply lands in `results` (or `compensations`) under its name, and the
/// first failure in `failure`.
pub fn initial_data(input: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "input": input, "results": {}, "compensations": {} })
}

/// What handling a reply did.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Seen before.
    Duplicate,
    /// Not for a step the saga is at (late or stray): nothing changed.
    Ignored,
    Advanced,
    Completed(Saga),
    Compensating,
    /// Ended after undoing what was done; the first failure is the reason.
    Compensated {
        saga: Saga,
        reason: String,
    },
}

/// The next move of a saga, decided without I/O.
#[derive(Debug, Clone, PartialEq)]
struct Move {
    to: SagaState,
    step: String,
    deadline: Option<OffsetDateTime>,
    /// The command to send with it: (step index, command).
    command: Option<(usize, &'static str)>,
    note: String,
}

/// Where a failure (at step `index`, `including` it when its outcome is unknown) leads.
fn compensate(def: &Definition, index: usize, including: bool, now: OffsetDateTime, reason: &str) -> Move {
    match def.compensable_before(index, including) {
        Some(step) => Move {
            to: SagaState::Compensating,
            step: step.name.to_owned(),
            deadline: Some(now + step.timeout),
            command: def.index(step.name).zip(step.compensation),
            note: format!("compensating {}: {reason}", step.name),
        },
        None => Move {
            to: SagaState::Compensated,
            step: def.steps[index].name.to_owned(),
            deadline: None,
            command: None,
            note: reason.to_owned(),
        },
    }
}

fn decide(def: &Definition, saga: &Saga, reply: &Reply, now: OffsetDateTime) -> Option<Move> {
    let index = def.index(&saga.step)?;
    let step = def.steps[index];
    if reply.step != saga.step {
        return None;
    }
    match saga.state {
        SagaState::Running if reply.command == step.action => {
            if reply.ok {
                Some(match def.steps.get(index + 1) {
                    Some(next) => Move {
                        to: SagaState::Running,
                        step: next.name.to_owned(),
                        deadline: Some(now + next.timeout),
                        command: Some((index + 1, next.action)),
                        note: format!("{} done", step.name),
                    },
                    None => Move {
                        to: SagaState::Completed,
                        step: step.name.to_owned(),
                        deadline: None,
                        command: None,
                        note: "completed".into(),
                    },
                })
            } else {
                let reason = reply.reason.clone().unwrap_or_else(|| format!("{} failed", step.name));
                Some(compensate(def, index, false, now, &reason))
            }
        }
        SagaState::Compensating if Some(reply.command.as_str()) == step.compensation => {
            if reply.ok {
                let reason = failure(saga);
                Some(compensate(def, index, false, now, &reason))
            } else {
                // Retried until it succeeds: the ticker sends it again at the deadline.
                Some(Move {
                    to: SagaState::Compensating,
                    step: step.name.to_owned(),
                    deadline: Some(now + step.timeout),
                    command: None,
                    note: format!(
                        "compensation of {} failed, will retry: {}",
                        step.name,
                        reply.reason.clone().unwrap_or_default()
                    ),
                })
            }
        }
        _ => None,
    }
}

fn failure(saga: &Saga) -> String {
    saga.data["failure"].as_str().unwrap_or("failed").to_owned()
}

/// Applies `mv` to `saga` inside `tx`, only if the saga is still in the state and at the step
/// it was read in; logs the transition and writes the move's command. Returns whether it moved.
/// A span of its own (`saga <kind> <command>`), which the command carries as its parent.
async fn apply(
    tx: &mut Tx,
    actor: &Actor,
    def: &Definition,
    saga: &Saga,
    mv: &Move,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let span = move_span(actor, def, saga, mv);
    tracing::Instrument::instrument(
        async {
            if !saga::apply(tx, saga, &change(saga, mv, now)).await? {
                return Ok(false);
            }
            if let Some((actor, event)) = command(def, saga, mv, &span, actor) {
                outbox::write_event(tx, &actor, &event).await?;
            }
            Ok(true)
        },
        span.clone(),
    )
    .await
}

/// [`apply`] gathered in `writes`, for a saga locked since it was read (so it moves): the
/// rows the writes change.
fn gather_apply(
    writes: &mut Writes,
    actor: &Actor,
    def: &Definition,
    saga: &Saga,
    mv: &Move,
    now: OffsetDateTime,
) -> u64 {
    let span = move_span(actor, def, saga, mv);
    let mut changed = saga::gather_apply(writes, saga, &change(saga, mv, now));
    if let Some((actor, event)) = command(def, saga, mv, &span, actor) {
        outbox::gather_event(writes, &actor, &event);
        changed += 1;
    }
    changed
}

/// The span of a move: `saga <kind> <command>`.
fn move_span(actor: &Actor, def: &Definition, saga: &Saga, mv: &Move) -> tracing::Span {
    crate::trace::saga_span(
        Some(crate::stream_of(def.command_type)),
        def.kind,
        saga.id,
        mv.to.as_str(),
        &mv.step,
        mv.command.map(|(_, command)| command),
        Some(actor),
    )
}

fn change<'a>(saga: &'a Saga, mv: &'a Move, now: OffsetDateTime) -> Change<'a> {
    Change { to: mv.to, step: &mv.step, deadline: mv.deadline, data: Some(&saga.data), at: now, note: &mv.note }
}

/// The command a move sends, if any, with the actor that carries `span` as its parent.
fn command(def: &Definition, saga: &Saga, mv: &Move, span: &tracing::Span, actor: &Actor) -> Option<(Actor, Event)> {
    let (index, command) = mv.command?;
    let actor = span.in_scope(|| crate::trace::actor_here(actor));
    Some((actor, def.command(saga, &def.steps[index], command)))
}

/// Handles a reply for sagas of `def`, once per envelope (`consumer` names the inbox entry).
pub async fn on_reply(
    db: &Database,
    def: &Definition,
    consumer: &str,
    envelope: &Envelope,
    actor: &Actor,
) -> Result<Handled, StoreError> {
    if serde_json::from_value::<Reply>(envelope.payload.clone()).is_err() {
        return Ok(Handled::Ignored);
    }
    let mut tx = db.begin_write().await?;
    let handled = on_reply_in(&mut tx, def, consumer, envelope, actor).await?;
    if !matches!(handled, Handled::Duplicate) {
        tx.commit().await?;
    }
    Ok(handled)
}

/// [`on_reply`] inside `tx`, a write transaction the caller commits (a consumer's batch): what
/// it returns holds once `tx` is committed.
pub async fn on_reply_in(
    tx: &mut Tx,
    def: &Definition,
    consumer: &str,
    envelope: &Envelope,
    actor: &Actor,
) -> Result<Handled, StoreError> {
    let Ok(reply) = serde_json::from_value::<Reply>(envelope.payload.clone()) else { return Ok(Handled::Ignored) };
    let now = OffsetDateTime::now_utc();
    if !medcov_store::inbox::record_once(tx, consumer, envelope.id).await? {
        return Ok(Handled::Duplicate);
    }
    let Some(mut saga) = saga::get_in(tx, reply.saga_id).await? else {
        return Ok(Handled::Ignored);
    };
    let Some(mv) = take(def, &mut saga, &reply, now) else {
        return Ok(Handled::Ignored);
    };
    if !apply(tx, actor, def, &saga, &mv, now).await? {
        return Ok(Handled::Ignored);
    }
    Ok(moved(saga, &mv, now).1)
}

/// [`on_reply_in`] for a run of replies at once, inside `tx` (a consumer's batch), each with
/// its actor and the span it is processed in: their inbox records in one statement, their
/// sagas read and locked in one, and every move with its transition and command gathered to
/// run together (one round trip on SQLite). Each reply is handled as [`on_reply_in`] handles it, in order: a second reply to
/// one saga sees the first one's move. What it returns holds once `tx` is committed; on an
/// error, `tx` is to be rolled back.
pub async fn on_replies_in(
    tx: &mut Tx,
    def: &Definition,
    consumer: &str,
    replies: &[(&Envelope, &Actor, &tracing::Span)],
) -> Result<Vec<Handled>, StoreError> {
    let now = OffsetDateTime::now_utc();
    let parsed: Vec<Option<Reply>> =
        replies.iter().map(|(envelope, _, _)| serde_json::from_value(envelope.payload.clone()).ok()).collect();
    let events: Vec<Uuid> =
        replies.iter().zip(&parsed).filter(|(_, reply)| reply.is_some()).map(|((e, _, _), _)| e.id).collect();
    let mut fresh = medcov_store::inbox::record_all(tx, consumer, &events).await?;
    let mut ids: Vec<Uuid> = parsed.iter().flatten().map(|reply| reply.saga_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut sagas: std::collections::HashMap<Uuid, Saga> =
        saga::get_all_locked(tx, &ids).await?.into_iter().map(|saga| (saga.id, saga)).collect();
    let mut writes = tx.writes();
    let mut changes = 0;
    let mut handled = Vec::with_capacity(replies.len());
    for ((envelope, actor, span), reply) in replies.iter().zip(parsed) {
        let Some(reply) = reply else {
            handled.push(Handled::Ignored);
            continue;
        };
        if !fresh.remove(&envelope.id) {
            handled.push(Handled::Duplicate);
            continue;
        }
        let Some(saga) = sagas.get_mut(&reply.saga_id) else {
            handled.push(Handled::Ignored);
            continue;
        };
        let Some(mv) = take(def, saga, &reply, now) else {
            handled.push(Handled::Ignored);
            continue;
        };
        // In the event's span, as one at a time: the move's span and command follow its trace.
        changes += span.in_scope(|| gather_apply(&mut writes, actor, def, saga, &mv, now));
        let (after, outcome) = moved(saga.clone(), &mv, now);
        *saga = after;
        handled.push(outcome);
    }
    let changed = writes.run(tx).await?;
    if changed != changes {
        // The sagas are locked since they were read: a bug, and nothing of it is kept.
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "replies to sagas changed {changed} rows where their moves change {changes}"
        ))));
    }
    Ok(handled)
}

/// The move `reply` makes `saga` (as read with it) take, with the reply recorded in its data;
/// `None` when the reply is not for the step the saga is at, or not for a saga of `def`.
fn take(def: &Definition, saga: &mut Saga, reply: &Reply, now: OffsetDateTime) -> Option<Move> {
    let mv = decide(def, saga, reply, now).filter(|_| saga.kind == def.kind)?;
    let book = if saga.state == SagaState::Compensating { "compensations" } else { "results" };
    if reply.ok {
        saga.data[book][saga.step.as_str()] = reply.data.clone();
    } else if saga.data.get("failure").is_none() {
        saga.data["failure"] = serde_json::Value::String(mv.note.clone());
    }
    Some(mv)
}

/// The saga once `mv` is applied, and what handling the reply did.
fn moved(saga: Saga, mv: &Move, now: OffsetDateTime) -> (Saga, Handled) {
    let after = Saga { state: mv.to, step: mv.step.clone(), deadline_at: mv.deadline, updated_at: now, ..saga };
    let handled = match mv.to {
        SagaState::Running => Handled::Advanced,
        SagaState::Compensating => Handled::Compensating,
        SagaState::Completed => Handled::Completed(after.clone()),
        SagaState::Compensated => Handled::Compensated { reason: failure(&after), saga: after.clone() },
    };
    (after, handled)
}

/// Acts on the sagas of `def` past their deadline: a running step that did not answer fails
/// (and is compensated itself, its outcome being unknown); a compensation is sent again.
/// Returns the sagas that ended compensated.
pub async fn tick(db: &Database, def: &Definition, actor: &Actor) -> Result<Vec<(Saga, String)>, StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut ended = Vec::new();
    for mut saga in crate::saga::due(db, now, 100).await?.into_iter().filter(|s| s.kind == def.kind) {
        let Some(index) = def.index(&saga.step) else { continue };
        let step = def.steps[index];
        let mv = match saga.state {
            SagaState::Running => {
                let reason = format!("{} did not answer in time", step.name);
                if saga.data.get("failure").is_none() {
                    saga.data["failure"] = serde_json::Value::String(reason.clone());
                }
                compensate(def, index, true, now, &reason)
            }
            SagaState::Compensating => Move {
                to: SagaState::Compensating,
                step: step.name.to_owned(),
                deadline: Some(now + step.timeout),
                command: step.compensation.map(|c| (index, c)),
                note: format!("compensation of {} sent again", step.name),
            },
            _ => continue,
        };
        let mut tx = db.begin_write().await?;
        let moved = apply(&mut tx, actor, def, &saga, &mv, now).await?;
        tx.commit().await?;
        if moved && mv.to == SagaState::Compensated {
            let reason = failure(&saga);
            ended.push((Saga { state: mv.to, ..saga }, reason));
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: [Step; 3] = [
        Step {
            name: "verify",
            target: "insurance",
            action: "verify",
            compensation: Some("unlink"),
            timeout: Duration::from_secs(30),
        },
        Step { name: "note", target: "hospital", action: "note", compensation: None, timeout: Duration::from_secs(30) },
        Step {
            name: "open",
            target: "billing",
            action: "open",
            compensation: Some("close"),
            timeout: Duration::from_secs(30),
        },
    ];
    const DEF: Definition = Definition { kind: "test", command_type: "hospital.saga_command.v1", steps: &STEPS };

    fn saga(state: SagaState, step: &str) -> Saga {
        let now = OffsetDateTime::now_utc();
        Saga {
            id: Uuid::nil(),
            kind: "test".into(),
            subject_id: Uuid::nil(),
            tenant_id: None,
            state,
            step: step.into(),
            deadline_at: None,
            data: initial_data(serde_json::json!({})),
            created_at: now,
            updated_at: now,
        }
    }

    fn reply(step: &str, command: &str, ok: bool) -> Reply {
        Reply {
            saga_id: Uuid::nil(),
            step: step.into(),
            command: command.into(),
            ok,
            reason: Some("no".into()),
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn successes_walk_forward_and_complete() {
        let now = OffsetDateTime::now_utc();
        let mv = decide(&DEF, &saga(SagaState::Running, "verify"), &reply("verify", "verify", true), now).unwrap();
        assert_eq!((mv.to, mv.step.as_str(), mv.command), (SagaState::Running, "note", Some((1, "note"))));
        let mv = decide(&DEF, &saga(SagaState::Running, "open"), &reply("open", "open", true), now).unwrap();
        assert_eq!((mv.to, mv.command), (SagaState::Completed, None));
    }

    #[test]
    fn a_failure_compensates_what_was_done_in_reverse_skipping_steps_without_one() {
        let now = OffsetDateTime::now_utc();
        // open fails: note has nothing to undo, verify is unlinked.
        let mv = decide(&DEF, &saga(SagaState::Running, "open"), &reply("open", "open", false), now).unwrap();
        assert_eq!((mv.to, mv.step.as_str(), mv.command), (SagaState::Compensating, "verify", Some((0, "unlink"))));
        // The unlink done: nothing before it, compensated.
        let mv = decide(&DEF, &saga(SagaState::Compensating, "verify"), &reply("verify", "unlink", true), now).unwrap();
        assert_eq!((mv.to, mv.command), (SagaState::Compensated, None));
        // The first step failing has nothing to undo.
        let mv = decide(&DEF, &saga(SagaState::Running, "verify"), &reply("verify", "verify", false), now).unwrap();
        assert_eq!(mv.to, SagaState::Compensated);
    }

    #[test]
    fn a_failed_compensation_is_retried_and_stray_replies_change_nothing() {
        let now = OffsetDateTime::now_utc();
        let mv =
            decide(&DEF, &saga(SagaState::Compensating, "verify"), &reply("verify", "unlink", false), now).unwrap();
        assert_eq!((mv.to, mv.step.as_str(), mv.command), (SagaState::Compensating, "verify", None));
        assert_eq!(
            decide(&DEF, &saga(SagaState::Running, "open"), &reply("verify", "verify", true), now),
            None,
            "late"
        );
        assert_eq!(decide(&DEF, &saga(SagaState::Completed, "open"), &reply("open", "open", true), now), None, "ended");
        assert_eq!(decide(&DEF, &saga(SagaState::Running, "verify"), &reply("verify", "unlink", true), now), None);
    }

    fn envelope(saga: Uuid, (step, command, ok): (&str, &str, bool)) -> Envelope {
        let reply = Reply { saga_id: saga, ..reply(step, command, ok) };
        Envelope {
            id: Uuid::now_v7(),
            event_type: "insurance.saga_reply.v1".into(),
            aggregate_type: "saga".into(),
            aggregate_id: saga,
            tenant_id: None,
            occurred_at: OffsetDateTime::now_utc(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            payload: serde_json::to_value(reply).unwrap(),
        }
    }

    /// A run of replies handled at once ends where the same replies one at a time would: one
    /// saga moves twice in the run, a failure ends another, a repeat and a reply to no saga
    /// change nothing, and each move is logged and sends its command.
    async fn a_run_of_replies_moves_each_saga_as_one_at_a_time_would(env: medcov_testkit::TestEnv) {
        let service = medcov_config::ServiceName::Hospital;
        let options = medcov_store::PoolOptions::from_config(&env.config);
        let db = Database::connect(service, env.config.database_url(service), &options).await.unwrap();
        db.migrate(service, &medcov_store::platform_migrations()).await.unwrap();
        let actor = Actor::default();
        let mut tx = db.begin_write().await.unwrap();
        let mut writes = tx.writes();
        let [a, b] = [(); 2].map(|()| start(&mut writes, &actor, &DEF, (Uuid::now_v7(), Uuid::now_v7()), json()));
        writes.run(&mut tx).await.unwrap();
        tx.commit().await.unwrap();

        let verified = envelope(a, ("verify", "verify", true));
        let run = [
            verified.clone(),
            envelope(b, ("verify", "verify", false)),
            verified,
            envelope(Uuid::now_v7(), ("verify", "verify", true)),
            envelope(a, ("note", "note", true)),
        ];
        let span = tracing::Span::none();
        let replies: Vec<_> = run.iter().map(|envelope| (envelope, &actor, &span)).collect();
        let mut tx = db.begin_write().await.unwrap();
        let handled = on_replies_in(&mut tx, &DEF, "test.sagas", &replies).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            matches!(
                handled.as_slice(),
                [
                    Handled::Advanced,
                    Handled::Compensated { .. },
                    Handled::Duplicate,
                    Handled::Ignored,
                    Handled::Advanced
                ]
            ),
            "{handled:?}"
        );
        let (moved, log) = saga::get(&db, a).await.unwrap().expect("a");
        assert_eq!((moved.state, moved.step.as_str(), log.len()), (SagaState::Running, "open", 3), "{log:?}");
        let (ended, log) = saga::get(&db, b).await.unwrap().expect("b");
        assert_eq!((ended.state, log.len()), (SagaState::Compensated, 2), "{log:?}");
        let commands: Vec<_> = outbox::all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|event| (event.aggregate_id, event.payload["command"].as_str().map(str::to_owned)))
            .collect();
        let command = |saga: Uuid, name: &str| (saga, Some(name.to_owned()));
        assert_eq!(commands, [command(a, "verify"), command(b, "verify"), command(a, "note"), command(a, "open")]);

        // The same run again: every reply was recorded, the one to no saga too.
        let mut tx = db.begin_write().await.unwrap();
        let again = on_replies_in(&mut tx, &DEF, "test.sagas", &replies).await.unwrap();
        assert!(again.iter().all(|handled| *handled == Handled::Duplicate), "{again:?}");
        drop(tx);
        db.close().await;
    }

    fn json() -> serde_json::Value {
        serde_json::json!({})
    }

    medcov_testkit::backend_suite!(a_run_of_replies_moves_each_saga_as_one_at_a_time_would);

    #[test]
    fn a_step_that_timed_out_is_compensated_itself() {
        let now = OffsetDateTime::now_utc();
        let mv = compensate(&DEF, 2, true, now, "open did not answer in time");
        assert_eq!((mv.step.as_str(), mv.command), ("open", Some((2, "close"))));
    }
}
