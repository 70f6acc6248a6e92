/**
 * Handlers for what the agent changed and the three requests that change the agent: pause, resume and revert one
 * change. The token and the body limit are checked before these run (their routes are `write`); each logs who asked.
 */
import type { Handler } from '../context.js';
import { HttpError } from '../errors.js';
import { parseName, sendBody, sendJson } from '../respond.js';

export const changes: Handler = ({ app, res }) => sendBody(res, '/api/changes', { changes: app.control.changes() });

export const pause: Handler = ({ app, req, res }) => {
  app.log.info({ remote: req.socket.remoteAddress }, 'pause agent: requested over http');
  app.control.pause();
  sendJson(res, 200, { paused: app.control.paused() });
};

export const resume: Handler = ({ app, req, res }) => {
  app.log.info({ remote: req.socket.remoteAddress }, 'resume agent: requested over http');
  app.control.resume();
  sendJson(res, 200, { paused: app.control.paused() });
};

export const revert: Handler = ({ app, req, res, params }) => {
  const knobId = parseName(params.knobId, 'knob id');
  app.log.info({ remote: req.socket.remoteAddress, knobId }, 'revert change: requested over http');
  if (!app.control.revert(knobId)) {
    throw new HttpError(404, 'NOT_FOUND', `revert change ${knobId}: no change with that id is in effect`);
  }
  sendJson(res, 200, { reverted: knobId });
};
