// The gridexp dashboard: polls the /api/v1 read routes every two seconds (conditional GETs
// with If-None-Match, so an idle grid costs a few 304s) and renders the experiments overview,
// the workers panel, the trials table, the plots and the trial detail.
//
// Everything the server sends is data: text reaches the page only through textContent,
// attributes and Plotly strings escaped by plotlyText(). Trial logs, hyperparameter keys and
// values, results and error messages all come from users' code.
//
// This is the entry module (index.html loads it with type="module"; no build step). The other
// modules sit beside it under /static/ and import each other's functions, some in cycles (the
// poll renders every panel, a panel's action asks the poll for a refresh). That is safe
// because no module but this one runs code when it loads: they only define functions and
// state, and this module starts the page once all of them are loaded.
import { poll } from "./poll.js";
import { wire } from "./wiring.js";

wire();
poll();
