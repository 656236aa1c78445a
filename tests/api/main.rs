//! The service's integration tests: the real app on a random port, a real
//! SMTP server, real databases (SQLite files; PostgreSQL when configured).

#![allow(clippy::field_reassign_with_default)]

mod helpers;
mod smtp_server;
mod tcp_proxy;

mod admin_auth;
mod admin_dashboard;
mod admin_pages;
mod archive;
mod bounces;
mod browser;
mod cli;
mod contention;
mod deliverability;
mod delivery;
mod dkim;
mod editor_credentials;
mod embed;
mod feedback;
mod hardening;
mod hostile_text;
mod imap;
mod language;
mod large_lists;
mod login_attacks;
mod look;
mod operations;
mod outgoing_webhooks;
mod postfix;
mod public_ids;
mod relay_round_trips;
mod reliability;
mod sending;
mod slow_clients;
mod subscriber_api;
mod subscriptions;
mod unsubscribe;
mod versions;
mod webhooks;
mod workers;
