// The conflicts page (issue #16): the conflict feed live, counters per route, and a conflict's
// three versions with the buttons that resolve it. Plain JS, no framework, nothing from another
// origin (the page's Content-Security-Policy allows only this file and app.css).
//
// The feed is read with fetch() and a streaming body reader, not EventSource: EventSource cannot
// send Authorization. The bearer token, when the control endpoints ask for one (401), lives in
// `token` only: never in localStorage, a cookie or the URL.
'use strict';

(() => {
  // "/_arbiter/ui/" → "/_arbiter": the control prefix this page was served under.
  const prefix = location.pathname.replace(/\/ui\/[^/]*$/, '');
  const kMaxRows = 500;           // rows kept in the table; older ones are dropped from the page
  const kStatsIntervalMs = 3000;  // counters refresh
  const kBackfillLimit = 200;     // events read by polling before subscribing

  let token = null;
  let retryMs = 3000;             // the stream's `retry:` field overrides it
  let lastEventId = null;         // the newest id seen: Last-Event-ID of the next reconnect
  let feedAbort = null;           // aborts the current subscription
  let statsTimer = null;
  let filters = {route: '', resource: '', type: ''};
  const events = new Map();       // id → {event, row}
  let selected = null;            // the conflict shown in the detail view: {id, record}

  const $ = (id) => document.getElementById(id);

  class NeedsToken extends Error {}
  class Forbidden extends Error {}

  function headersWith(extra) {
    const headers = Object.assign({}, extra);
    if (token !== null) headers.Authorization = 'Bearer ' + token;
    return headers;
  }

  // fetch() against a control endpoint; 401 asks for a token and throws NeedsToken, 403 throws
  // Forbidden with the problem's detail.
  async function control(path, options) {
    const init = Object.assign({cache: 'no-store'}, options || {});
    init.headers = headersWith(init.headers);
    const response = await fetch(prefix + path, init);
    if (response.status === 401) {
      askForToken(token === null ? 'The control endpoints need a bearer token.'
                                 : 'That token was refused; enter another.');
      throw new NeedsToken();
    }
    if (response.status === 403) {
      const problem = await readProblem(response);
      const message = problem.detail || problem.title || 'Forbidden.';
      setConnection('forbidden', message);
      throw new Forbidden(message);
    }
    return response;
  }

  async function readProblem(response) {
    try {
      const body = await response.json();
      return body && typeof body === 'object' ? body : {};
    } catch (e) {
      return {};
    }
  }

  function setConnection(state, text) {
    const element = $('connection');
    element.dataset.state = state;
    element.textContent = text;
  }

  // ---- The token ----

  function askForToken(message) {
    $('auth-message').textContent = message;
    $('auth').hidden = false;
    setConnection('token', 'waiting for a token');
    stopFeed();
    stopStats();
    $('token-input').focus();
  }

  $('auth-form').addEventListener('submit', (submitted) => {
    submitted.preventDefault();
    const input = $('token-input');
    token = input.value.trim();
    input.value = '';
    $('auth').hidden = true;
    start();
  });

  // ---- Counters per route ----

  function stopStats() {
    if (statsTimer !== null) clearTimeout(statsTimer);
    statsTimer = null;
  }

  async function refreshStats() {
    statsTimer = null;
    try {
      const response = await control('/stats', {headers: {Accept: 'application/json'}});
      if (response.ok) {
        renderStats(await response.json());
        $('stats-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      }
    } catch (e) {
      if (e instanceof NeedsToken || e instanceof Forbidden) return;
    }
    if (statsTimer === null) statsTimer = setTimeout(refreshStats, kStatsIntervalMs);
  }

  function renderStats(stats) {
    const body = $('stats-rows');
    const rows = [];
    for (const route of stats.routes || []) {
      const row = document.createElement('tr');
      row.dataset.testid = 'stats-row';
      row.dataset.route = route.route;
      const cells = [route.route, route.writes, route.conflicts, route.merges, route.rate_limited, route.locks_held];
      const names = ['route', 'writes', 'conflicts', 'merges', 'rate_limited', 'locks_held'];
      cells.forEach((value, i) => {
        const cell = document.createElement(i === 0 ? 'th' : 'td');
        if (i === 0) cell.scope = 'row';
        cell.dataset.field = names[i];
        cell.textContent = String(value);
        row.appendChild(cell);
      });
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  // ---- The feed ----

  function feedQuery(extra) {
    const query = new URLSearchParams();
    if (filters.route) query.set('route', filters.route);
    if (filters.resource) query.set('resource', filters.resource);
    if (filters.type) query.set('type', filters.type);
    for (const [name, value] of Object.entries(extra || {})) query.set(name, value);
    const text = query.toString();
    return '/conflicts' + (text ? '?' + text : '');
  }

  function stopFeed() {
    if (feedAbort !== null) feedAbort.abort();
    feedAbort = null;
  }

  const sleep = (ms, signal) => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, {once: true});
  });

  // What the ring holds already (the polling form), so the table does not start empty; the
  // stream then goes on after it. Best effort: a feed without the polling form just streams.
  async function backfill(signal) {
    const response = await control(feedQuery({since: '0', limit: String(kBackfillLimit)}),
                                   {headers: {Accept: 'application/json'}, signal});
    if (!response.ok) return;
    const page = await response.json();
    for (const event of page.events || []) showEvent(event);
    // Even 0 (nothing held yet): the stream then starts from the ring's oldest, so an event
    // published between this read and the subscription is not missed.
    if (typeof page.next === 'number') lastEventId = String(page.next);
  }

  // Subscribes and stays subscribed: after a drop it reconnects with Last-Event-ID, after
  // `retry` ms, until stopFeed() or a 401/403.
  async function subscribe() {
    stopFeed();
    const abort = new AbortController();
    feedAbort = abort;
    const signal = abort.signal;
    setConnection('connecting', 'connecting…');
    try {
      if (lastEventId === null) await backfill(signal);
    } catch (e) {
      if (e instanceof NeedsToken || e instanceof Forbidden || signal.aborted) return;
    }
    while (!signal.aborted) {
      try {
        const headers = {Accept: 'text/event-stream'};
        if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
        const response = await control(feedQuery(), {headers, signal});
        if (response.ok && response.body) {
          setConnection('live', 'live');
          await readEventStream(response.body.getReader(), signal);
          if (!signal.aborted) setConnection('reconnecting', 'stream ended; reconnecting…');
        } else if (response.status === 400) {
          // A filter the feed refuses (an unknown type): retrying would not change the answer.
          const problem = await readProblem(response);
          setConnection('error', 'filter refused: ' + (problem.detail || problem.title || response.status));
          return;
        } else {
          const problem = await readProblem(response);
          setConnection('reconnecting', 'feed answered ' + response.status +
                        (problem.title ? ' (' + problem.title + ')' : '') + '; retrying…');
        }
      } catch (e) {
        if (e instanceof NeedsToken || e instanceof Forbidden || signal.aborted) return;
        setConnection('reconnecting', 'connection lost; reconnecting…');
      }
      await sleep(retryMs, signal);
    }
  }

  // Reads Server-Sent Events (the WHATWG framing: lines ended by CRLF, LF or CR; `field: value`;
  // a blank line dispatches; lines starting with ':' are comments) until the body ends.
  async function readEventStream(reader, signal) {
    const decoder = new TextDecoder();
    let buffer = '';
    let data = [];
    let type = '';
    let id = null;
    const dispatch = () => {
      if (id !== null) lastEventId = id;
      if (data.length > 0) onStreamEvent(type || 'message', data.join('\n'));
      data = [];
      type = '';
      id = null;
    };
    const line = (text) => {
      if (text === '') return dispatch();
      if (text.startsWith(':')) return;
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    };
    while (!signal.aborted) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let start = 0;
      for (let i = 0; i < buffer.length; ++i) {
        const c = buffer[i];
        if (c !== '\n' && c !== '\r') continue;
        if (c === '\r' && i + 1 === buffer.length) break;  // a CR that may be half of a CRLF
        line(buffer.slice(start, i));
        if (c === '\r' && buffer[i + 1] === '\n') ++i;
        start = i + 1;
      }
      buffer = buffer.slice(start);
    }
  }

  function onStreamEvent(type, data) {
    if (type === 'reset') {
      if (events.size === 0 && lastEventId === '0') return;  // nothing seen yet: nothing was missed
      const notice = $('feed-notice');
      notice.textContent = 'Some events were missed while disconnected: the feed had already dropped them.';
      notice.hidden = false;
      return;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (event && typeof event === 'object' && event.id !== undefined) showEvent(event);
  }

  // ---- The table ----

  const kColumns = ['id', 'time', 'type', 'route', 'resource', 'client', 'your_etag', 'current_etag', 'resolved'];

  function resolvedText(resolved) {
    if (!resolved) return '';
    return 'by ' + resolved.by + ' (' + resolved.choice + ')';
  }

  function cellText(event, column) {
    const value = event[column];
    if (column === 'resolved') {
      if (event.type !== 'conflict') return '';
      return value ? resolvedText(value) : 'no';
    }
    if (column === 'time' && typeof value === 'string') {
      const at = new Date(value);
      return isNaN(at) ? value : at.toLocaleTimeString(undefined, {hour12: false}) + '.' +
                                 String(at.getMilliseconds()).padStart(3, '0');
    }
    if (value === null) return '(none)';
    return value === undefined ? '' : String(value);
  }

  // The conflict a `resolved` event settles (its details name it).
  function resolvedConflictId(event) {
    for (const key of ['conflict_id', 'conflict', 'resolves']) {
      if (typeof event[key] === 'number' || typeof event[key] === 'string') return String(event[key]);
    }
    return null;
  }

  function showEvent(event) {
    const id = String(event.id);
    const known = events.get(id);
    const row = known ? known.row : document.createElement('tr');
    if (!known) {
      row.dataset.testid = 'event-row';
      row.dataset.eventId = id;
      row.dataset.type = event.type;
      if (event.type === 'conflict') {
        row.classList.add('clickable');
        row.tabIndex = 0;
        row.title = 'Show both versions and resolve';
        row.addEventListener('click', () => openConflict(id));
        row.addEventListener('keydown', (key) => {
          if (key.key === 'Enter' || key.key === ' ') {
            key.preventDefault();
            openConflict(id);
          }
        });
      }
      insertNewestFirst(row, Number(event.id));
    }
    row.classList.toggle('resolved', Boolean(event.resolved));
    row.replaceChildren(...kColumns.map((column) => {
      const cell = document.createElement('td');
      cell.dataset.field = column;
      cell.textContent = cellText(event, column);
      if (column === 'time') cell.title = event.time || '';
      if (column === 'type') cell.className = 'type type-' + event.type;
      return cell;
    }));
    events.set(id, {event, row});
    if (event.type === 'resolved' && !known) {
      const conflict = resolvedConflictId(event);
      if (conflict !== null && events.has(conflict)) learnResolution(conflict, event);
    }
    trimRows();
    $('events-empty').hidden = events.size > 0;
  }

  function insertNewestFirst(row, id) {
    const body = $('event-rows');
    for (const other of body.children) {
      if (Number(other.dataset.eventId) < id) {
        body.insertBefore(row, other);
        return;
      }
    }
    body.appendChild(row);
  }

  function trimRows() {
    const body = $('event-rows');
    while (body.children.length > kMaxRows) {
      const oldest = body.lastElementChild;
      events.delete(oldest.dataset.eventId);
      oldest.remove();
    }
  }

  // A `resolved` event names its conflict; who settled it and how are in that conflict's record.
  async function learnResolution(id, event) {
    if (event.resolved) return markResolved(id, event.resolved);
    markResolved(id, {by: event.client, choice: '…'});
    try {
      const response = await control('/conflicts/' + encodeURIComponent(id), {headers: {Accept: 'application/json'}});
      if (!response.ok) return;
      const record = await response.json();
      if (record.resolved) markResolved(id, record.resolved);
    } catch (e) {
      // Keeps what the event said.
    }
  }

  function markResolved(id, resolution) {
    const known = events.get(id);
    if (known) showEvent(Object.assign({}, known.event, {resolved: resolution}));
    if (selected !== null && selected.id === id) showResolvedState(resolution);
  }

  $('filters').addEventListener('submit', (submitted) => {
    submitted.preventDefault();
    applyFilters({
      route: $('filter-route').value.trim(),
      resource: $('filter-resource').value.trim(),
      type: $('filter-type').value.replace(/\s+/g, ''),
    });
  });
  $('filter-clear').addEventListener('click', () => {
    for (const name of ['filter-route', 'filter-resource', 'filter-type']) $(name).value = '';
    applyFilters({route: '', resource: '', type: ''});
  });

  // A new filter is a new subscription: the table starts again from what the ring holds.
  function applyFilters(next) {
    filters = next;
    events.clear();
    $('event-rows').replaceChildren();
    $('events-empty').hidden = false;
    $('feed-notice').hidden = true;
    lastEventId = null;
    subscribe();
  }

  // ---- One conflict: three versions side by side, and resolving it ----

  // JSON Pointers a JSON Patch touches (each op's path, and a move's or copy's from).
  function patchPaths(ops) {
    const paths = new Set();
    for (const op of Array.isArray(ops) ? ops : []) {
      if (typeof op.path === 'string') paths.add(op.path);
      if (typeof op.from === 'string') paths.add(op.from);
    }
    return paths;
  }

  // True when `pointer` is one of `paths`, or lies below or above one of them.
  function touched(pointer, paths) {
    for (const path of paths) {
      if (pointer === path || pointer.startsWith(path + '/') || (path.startsWith(pointer + '/') && pointer !== '')) {
        return true;
      }
    }
    return false;
  }

  function escapePointer(key) {
    return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
  }

  // The body as a document: JSON when the record gives it so (or it parses), else the text;
  // a body the record had to give in base64 (not UTF-8) is only described.
  function documentOf(version) {
    if (!version) return {missing: true};
    const body = version.body;
    if (body !== null && typeof body === 'object') return {json: body};
    if (typeof body !== 'string') return {missing: true};
    if (version.encoding === 'base64') {
      return {text: '(' + (version.content_type || 'binary') + ', ' + Math.floor(body.length * 3 / 4) + ' bytes)'};
    }
    try {
      return {json: JSON.parse(body)};
    } catch (e) {
      return {text: body};
    }
  }

  // Renders `value` as indented JSON, one line per member or element, each line carrying its
  // JSON Pointer and marked when the diffs touch it.
  function renderJson(container, value, marks) {
    const lines = [];
    const emit = (depth, pointer, prefixText, text, suffix) => {
      const line = document.createElement('div');
      line.className = 'line';
      line.dataset.pointer = pointer;
      const mark = marks(pointer);
      if (mark) line.classList.add(mark);
      line.textContent = '  '.repeat(depth) + prefixText + text + suffix;
      lines.push(line);
    };
    const walk = (node, depth, pointer, prefixText, suffix) => {
      if (node !== null && typeof node === 'object') {
        const array = Array.isArray(node);
        const entries = array ? node.map((v, i) => [String(i), v]) : Object.entries(node);
        if (entries.length === 0) {
          emit(depth, pointer, prefixText, array ? '[]' : '{}', suffix);
          return;
        }
        emit(depth, pointer, prefixText, array ? '[' : '{', '');
        entries.forEach(([key, child], i) => {
          const comma = i + 1 < entries.length ? ',' : '';
          walk(child, depth + 1, pointer + '/' + escapePointer(key), array ? '' : JSON.stringify(key) + ': ', comma);
        });
        emit(depth, pointer, '', array ? ']' : '}', suffix);
        return;
      }
      emit(depth, pointer, prefixText, JSON.stringify(node), suffix);
    };
    walk(value, 0, '', '', '');
    container.replaceChildren(...lines);
  }

  // The pointers at which two JSON documents differ (the deepest), for a record without diffs
  // (no base in the history): then only "differs" can be said, not who changed what.
  function differingPointers(a, b, pointer = '', out = new Set()) {
    const isObject = (v) => v !== null && typeof v === 'object';
    if (isObject(a) && isObject(b) && Array.isArray(a) === Array.isArray(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        differingPointers(a[key], b[key], pointer + '/' + escapePointer(key), out);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.add(pointer);
    }
    return out;
  }

  function renderVersion(container, version, marks) {
    const doc = documentOf(version);
    container.classList.toggle('missing', Boolean(doc.missing));
    if (doc.json !== undefined) {
      renderJson(container, doc.json, marks);
    } else {
      const text = document.createElement('pre');
      text.textContent = doc.missing ? '(not available)' : doc.text;
      container.replaceChildren(text);
    }
  }

  async function openConflict(id) {
    const detail = $('detail');
    selected = {id, record: null};
    detail.hidden = false;
    $('detail-id').textContent = '#' + id;
    $('detail-summary').textContent = 'loading…';
    $('detail-state').textContent = '';
    $('resolve-result').textContent = '';
    $('editor').hidden = true;
    for (const name of ['base-body', 'current-body', 'yours-body']) $(name).replaceChildren();
    let record;
    try {
      const response = await control('/conflicts/' + encodeURIComponent(id), {headers: {Accept: 'application/json'}});
      if (!response.ok) {
        const problem = await readProblem(response);
        $('detail-summary').textContent = response.status + ' ' + (problem.title || '') +
                                          (problem.detail ? ': ' + problem.detail : '');
        setActionsEnabled(false);
        return;
      }
      record = await response.json();
    } catch (e) {
      if (!(e instanceof NeedsToken || e instanceof Forbidden)) $('detail-summary').textContent = 'Could not load it: ' + e;
      return;
    }
    if (selected === null || selected.id !== id) return;
    selected.record = record;
    showRecord(record);
    detail.scrollIntoView({block: 'nearest'});
  }

  // How each version's lines are marked: from the record's diffs (base→current, base→yours)
  // and the conflict's pointers; without diffs (no base), where theirs and yours differ.
  function versionMarks(record, currentDoc, yoursDoc) {
    if (!record.diff && currentDoc.json !== undefined && yoursDoc.json !== undefined) {
      const differs = differingPointers(currentDoc.json, yoursDoc.json);
      const marks = (pointer) => (touched(pointer, differs) ? 'differs' : null);
      return {base: marks, current: marks, yours: marks};
    }
    const diff = record.diff || {};
    const theirs = patchPaths(diff.base_to_current);
    const yours = patchPaths(diff.base_to_yours);
    for (const pointer of record.conflicts || []) {
      theirs.add(pointer);
      yours.add(pointer);
    }
    const mark = (pointer) => {
      const a = touched(pointer, theirs);
      const b = touched(pointer, yours);
      return a && b ? 'changed-both' : a ? 'changed-current' : b ? 'changed-yours' : null;
    };
    return {
      base: mark,
      current: (pointer) => (touched(pointer, theirs) ? mark(pointer) : null),
      yours: (pointer) => (touched(pointer, yours) ? mark(pointer) : null),
    };
  }

  function showRecord(record) {
    const yoursDoc = documentOf(record.yours);
    const currentDoc = documentOf(record.current);
    const marks = versionMarks(record, currentDoc, yoursDoc);
    $('detail-summary').textContent = (record.method || 'write') + ' ' + record.resource + ' on route ' + record.route +
        ' by ' + record.client + ' at ' + record.time;
    $('base-etag').textContent = (record.base && record.base.etag) || record.base_etag || '';
    $('current-etag').textContent = (record.current && record.current.etag) || record.current_etag || '';
    $('yours-etag').textContent = record.your_etag ? 'from ' + record.your_etag : '';
    renderVersion($('base-body'), record.base, marks.base);
    renderVersion($('current-body'), record.current, marks.current);
    renderVersion($('yours-body'), record.yours, marks.yours);
    const start = yoursDoc.json !== undefined ? yoursDoc.json : currentDoc.json;
    $('edit-document').value = start === undefined ? '' : JSON.stringify(start, null, 2);
    if (record.resolved) {
      showResolvedState(record.resolved);
    } else {
      setActionsEnabled(true);
      $('take-yours').disabled = Boolean(yoursDoc.missing);
      $('detail-state').textContent = yoursDoc.missing ? 'Your body was not kept (' + (record.body || 'none') +
          '): take theirs, or edit and save.' : '';
    }
  }

  function showResolvedState(resolution) {
    $('detail-state').textContent = 'Resolved ' + resolvedText(resolution) +
        (resolution.etag ? ', new ETag ' + resolution.etag : '') + '.';
    setActionsEnabled(false);
  }

  function setActionsEnabled(enabled) {
    for (const name of ['take-yours', 'take-theirs', 'edit-open', 'edit-save']) $(name).disabled = !enabled;
  }

  async function resolve(choice, documentValue) {
    if (selected === null || selected.record === null) return;
    const {id, record} = selected;
    const body = {take: choice};
    if (choice === 'document') body.document = documentValue;
    const headers = {'Content-Type': 'application/json', Accept: 'application/json'};
    const current = (record.current && record.current.etag) || record.current_etag;
    if (current) headers['If-Match'] = current;
    setActionsEnabled(false);
    const result = $('resolve-result');
    result.dataset.status = '';
    result.textContent = 'sending…';
    try {
      const response = await control('/conflicts/' + encodeURIComponent(id) + '/resolve',
                                      {method: 'POST', headers, body: JSON.stringify(body)});
      result.dataset.status = String(response.status);
      if (response.ok) {
        const etag = response.headers.get('ETag');
        result.textContent = response.status + ' — resolved (' + choice + ')' + (etag ? ', new ETag ' + etag : '');
        markResolved(id, {by: 'you', choice, etag});
        return;
      }
      const problem = await readProblem(response);
      result.textContent = response.status + ' ' + (problem.title || response.statusText) +
                           (problem.detail ? ': ' + problem.detail : '');
    } catch (e) {
      if (!(e instanceof NeedsToken)) result.textContent = 'Not sent: ' + e.message;
    }
    setActionsEnabled(true);
  }

  $('take-yours').addEventListener('click', () => resolve('yours'));
  $('take-theirs').addEventListener('click', () => resolve('theirs'));
  $('edit-open').addEventListener('click', () => {
    $('editor').hidden = false;
    $('edit-document').focus();
  });
  $('edit-save').addEventListener('click', () => {
    let documentValue;
    try {
      documentValue = JSON.parse($('edit-document').value);
    } catch (e) {
      $('resolve-result').textContent = 'Not JSON: ' + e.message;
      return;
    }
    resolve('document', documentValue);
  });
  $('detail-close').addEventListener('click', () => {
    $('detail').hidden = true;
    selected = null;
  });

  function start() {
    stopStats();
    refreshStats();
    subscribe();
  }

  start();
})();
