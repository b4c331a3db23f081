//! The platform's records in the API's shapes ([`super::schema`]): where
//! an id, a URL or an owner is added to what the ledger and the manager
//! keep.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::schema::{self, DYNO_SIZE, IdRef, Named, ReleaseRef, User, id_of};
use crate::formation::Formation;
use crate::ledger::{App, Build};
use crate::manager::DynoInfo;
use crate::release::{Release, Status};

/// What the API adds to records: who owns the apps and where they are
/// served and pushed to.
#[derive(Debug, Clone)]
pub struct Site {
    /// The account's email (the one holder of the API token).
    pub owner: String,
    /// The router's port on this host (`web_url`s).
    pub router_port: u16,
    /// `$WDYNO_HOME` (`git_url`s name the app's repo under it).
    pub home: PathBuf,
    /// When the account was made (the daemon's home was set up).
    pub since: DateTime<Utc>,
}

impl Site {
    pub fn user(&self) -> User {
        User::of_email(&self.owner)
    }

    pub fn account(&self) -> schema::Account {
        let user = self.user();
        let created_at = self.since;
        schema::Account {
            id: user.id,
            name: self.owner.split('@').next().unwrap_or("").to_owned(),
            email: user.email,
            created_at,
            updated_at: created_at,
            verified: true,
            two_factor_authentication: false,
            beta: false,
            allow_tracking: false,
            federated: false,
            default_organization: None,
            default_team: None,
        }
    }

    pub fn web_url(&self, app: &str) -> String {
        format!("http://{app}.localhost:{}/", self.router_port)
    }

    pub fn git_url(&self, app: &str) -> String {
        self.home
            .join("repos")
            .join(format!("{app}.git"))
            .display()
            .to_string()
    }

    /// An app, with the time of its newest release (if any).
    pub fn app(&self, app: &App, released_at: Option<DateTime<Utc>>) -> schema::App {
        let name = app.name.as_str();
        schema::App {
            id: app_id(app),
            name: name.to_owned(),
            owner: self.user(),
            web_url: self.web_url(name),
            git_url: self.git_url(name),
            created_at: app.created_at,
            updated_at: released_at.unwrap_or(app.created_at),
            released_at,
            stack: Named::fixed("stack", "wasi-0.2"),
            build_stack: Named::fixed("stack", "wasi-0.2"),
            region: Named::fixed("region", "local"),
            generation: Named::fixed("generation", "cedar"),
            buildpack_provided_description: None,
            maintenance: false,
            acm: false,
            archived_at: None,
            internal_routing: None,
            organization: None,
            team: None,
            space: None,
            repo_size: None,
            slug_size: None,
            process_tier: "basic".to_owned(),
            buildpacks: app.buildpacks.clone(),
            routing: app.routing,
            sleep_after: app.sleep_after,
        }
    }

    pub fn release(&self, app: &App, r: &Release, current: u64) -> schema::Release {
        schema::Release {
            id: release_id(app, r.version),
            version: r.version,
            current: r.version == current,
            status: r.status.to_string(),
            description: r.description.clone(),
            user: self.user(),
            created_at: r.created_at,
            updated_at: r.created_at,
            slug: r.slug.as_ref().map(|s| IdRef { id: s.to_string() }),
            app: app_ref(app),
            addon_plan_names: Vec::new(),
            output_stream_url: None,
            eligible_for_rollback: r.status == Status::Succeeded && r.slug.is_some(),
            process_types: r.process_types.clone(),
        }
    }
}

pub fn app_id(app: &App) -> String {
    id_of(&["app", app.name.as_str(), &app.created_at.to_rfc3339()])
}

pub fn app_ref(app: &App) -> Named {
    Named {
        id: app_id(app),
        name: app.name.to_string(),
    }
}

pub fn release_id(app: &App, version: u64) -> String {
    id_of(&["release", &app_id(app), &version.to_string()])
}

/// The formation entries of an app: one per process type of its current
/// release (but `release`, which runs as the release phase), with the
/// formation's count for it.
pub fn formation(app: &App, current: &Release, f: &Formation) -> Vec<schema::Formation> {
    current
        .process_types
        .iter()
        .filter(|(ty, _)| ty.as_str() != "release")
        .map(|(ty, command)| schema::Formation {
            id: id_of(&["formation", &app_id(app), ty]),
            app: app_ref(app),
            process_type: ty.clone(),
            quantity: f.get(ty),
            size: DYNO_SIZE.to_owned(),
            command: command.clone(),
            created_at: app.created_at,
            updated_at: current.created_at.max(app.created_at),
        })
        .collect()
}

pub fn dyno(app: &App, d: &DynoInfo) -> schema::Dyno {
    schema::Dyno {
        id: id_of(&["dyno", &app_id(app), &d.name, &d.updated_at.to_rfc3339()]),
        app: app_ref(app),
        attach_url: None,
        command: d.command.clone(),
        created_at: d.updated_at,
        name: d.name.clone(),
        release: ReleaseRef {
            id: release_id(app, d.release),
            version: d.release,
        },
        size: DYNO_SIZE.to_owned(),
        state: d.state.clone(),
        process_type: d.process_type.clone(),
        updated_at: d.updated_at,
        port: d.port,
        host: d.host.clone(),
    }
}

pub fn build(app: &App, b: &Build) -> schema::Build {
    schema::Build {
        id: b.id,
        status: b.status.to_string(),
        source: b.source.clone(),
        slug: b.slug.as_ref().map(|s| IdRef { id: s.to_string() }),
        release: b.release.map(|v| ReleaseRef {
            id: release_id(app, v),
            version: v,
        }),
        created_at: b.created_at,
        output_tail: b.output_tail.clone(),
    }
}
