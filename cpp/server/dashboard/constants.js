// The dashboard's fixed numbers: where the API is, how often it polls, the trial states in
// their display order and the limits of what a plot or the log view shows.

export const API = "/api/v1";
export const POLL_MS = 2000;
export const STATES = ["pending", "running", "done", "failed", "cancelled"];
export const MAX_CURVES = 20;
export const LOG_TAIL_CHARS = 200000;
export const WORKER_LOST_MS = 30000;
// Up to this many distinct values, a hyperparameter is plotted as categories.
export const FEW_VALUES = 12;
