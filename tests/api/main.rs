//! The service's integration tests: the real app on a random port, a real
//! SMTP server, real databases (SQLite files; PostgreSQL when configured).

#![allow(clippy::field_reassign_with_default)]

mod helpers;
mod smtp_server;

mod admin_auth;
mod admin_dashboard;
mod admin_pages;
mod archive;
mod bounces;
mod browser;
mod cli;
mod contention;
mod delivery;
mod embed;
mod feedback;
mod language;
mod look;
mod operations;
mod sending;
mod subscriber_api;
mod subscriptions;
mod unsubscribe;
mod workers;
