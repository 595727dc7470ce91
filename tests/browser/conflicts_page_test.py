#!/usr/bin/python3
"""The conflicts page in a real browser (issue #16): headless Chromium opens {prefix}/ui/ on a
real Arbiter in front of json-server, a conflict is provoked with plain HTTP requests, its row
must appear within 2 s, "Take yours" must write that document to json-server (read directly, not
through Arbiter), and the page is photographed into docs/conflicts-page.png for the README.

    /usr/bin/python3 tests/browser/conflicts_page_test.py [--arbiter build/arbiter] [--token]
                                                          [--screenshot docs/conflicts-page.png]

Without --token the control endpoints answer loopback clients ([control] allow's default); with
it, [control] tokens are configured and the page must ask for one (a password field) before it
shows anything. The page's own files must then open without a token (a navigation cannot send
one): that needs the control gate to let them through (see the README, "The page").

Debian's python3-selenium, chromium and chromium-driver (.ci/deps installs them); node and
tests/json-server/node_modules (npm ci). Every wait is bounded; the processes it starts are
killed when it ends, whatever happened. Exit status 0 when every check passed.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SOURCE_DIR = Path(__file__).resolve().parents[2]
PREFIX = '/_arbiter'
TOKEN = 'page-test-token-7f3a9c'  # a token the test configures; the page must ask for it
ROW_BOUND_S = 2.0                 # the bound: the conflict's row appears within 2 s
STEP_BOUND_S = 20.0               # every other wait: generous, for a loaded 2-core machine


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def request(method, url, body=None, headers=None, timeout=10):
    """(status, headers, body bytes) of one HTTP request; 4xx/5xx are answers, not errors."""
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers.setdefault('Content-Type', 'application/json')
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_for(what, check, bound_s, interval_s=0.05):
    """Polls check() until it returns something truthy; raises naming `what` after bound_s."""
    deadline = time.monotonic() + bound_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError) as error:
            last_error = error
        time.sleep(interval_s)
    raise AssertionError(f'{what}: not within {bound_s} s' + (f' ({last_error})' if last_error else ''))


class Processes:
    """The child processes started, stopped in reverse order by stop_all()."""

    def __init__(self):
        self.children = []

    def start(self, name, argv, log_path, cwd=None):
        log = open(log_path, 'wb')
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        self.children.append((name, child, log, log_path))
        return child

    def check_running(self):
        for name, child, _, log_path in self.children:
            if child.poll() is not None:
                raise AssertionError(f'{name} exited with {child.returncode}:\n{Path(log_path).read_text(errors="replace")}')

    def stop_all(self):
        for _, child, log, _ in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(timeout=5)
            log.close()
        self.children.clear()


def start_json_server(processes, directory, database):
    script = SOURCE_DIR / 'tests/json-server/node_modules/json-server/lib/cli/bin.js'
    node = shutil.which('node')
    if node is None or not script.exists():
        raise AssertionError(f'json-server needs node and {script} (bash .ci/deps installs them)')
    db_path = Path(directory) / 'db.json'
    db_path.write_text(json.dumps(database))
    port = free_port()
    processes.start('json-server', [node, str(script), '--port', str(port), '--host', '127.0.0.1', str(db_path)],
                    Path(directory) / 'json-server.log', cwd=directory)
    base = f'http://127.0.0.1:{port}'
    wait_for('json-server answering', lambda: (processes.check_running(), request('GET', base + '/db')[0] == 200)[1],
             STEP_BOUND_S, 0.1)
    return base


def start_arbiter(processes, binary, directory, backend_base, with_token):
    backend = backend_base.removeprefix('http://')
    token_sha256 = hashlib.sha256(TOKEN.encode()).hexdigest()
    control = (f'[control]\ntokens = [{{ name = "page-test", sha256 = "{token_sha256}", scopes = ["feed", "resolve"] }}]'
               if with_token else '')
    config = f'''
[server]
listen = "127.0.0.1:0"
workers = 2

[upstream.json_server]
servers = ["{backend}"]

{control}

[[route]]
name = "items"
path = "/items/{{id}}"
upstream = "json_server"
[route.etag]
[route.history]
'''
    config_path = Path(directory) / 'arbiter.toml'
    config_path.write_text(config)
    log_path = Path(directory) / 'arbiter.log'
    processes.start('arbiter', [str(binary), '-c', str(config_path)], log_path, cwd=directory)

    def listening_port():
        processes.check_running()
        found = re.search(r'arbiter: listening on 127\.0\.0\.1:(\d+)', log_path.read_text(errors='replace'))
        return found and int(found.group(1))

    port = wait_for('arbiter listening', listening_port, STEP_BOUND_S, 0.1)
    return f'http://127.0.0.1:{port}'


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                     '--window-size=1440,1000', '--hide-scrollbars', '--force-device-scale-factor=1'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    driver.set_page_load_timeout(STEP_BOUND_S)
    driver.set_script_timeout(STEP_BOUND_S)
    return driver


def by_testid(testid, extra=''):
    return (By.CSS_SELECTOR, f'[data-testid="{testid}"]{extra}')


def run(arbiter_binary, screenshot, with_token):
    processes = Processes()
    driver = None
    directory = tempfile.mkdtemp(prefix='arbiter-page-test-')
    try:
        original = {'id': 1, 'name': 'one', 'status': 'open', 'note': ''}
        theirs = {'id': 1, 'name': 'one', 'status': 'paid', 'note': ''}
        yours = {'id': 1, 'name': 'one', 'status': 'open', 'note': 'rush, please'}
        backend = start_json_server(processes, directory, {'items': [original]})
        proxy = start_arbiter(processes, arbiter_binary, directory, backend, with_token)

        status, _, body = request('GET', proxy + PREFIX + '/ui')
        assert status == 200 and b'<!doctype html>' in body, f'{PREFIX}/ui redirects to the page: {status}'
        status, _, _ = request('GET', proxy + PREFIX + '/stats')
        assert status == (401 if with_token else 200), f'the counters, {"without" if with_token else "from loopback"}: {status}'

        driver = start_browser()
        driver.get(proxy + PREFIX + '/ui/')
        wait = WebDriverWait(driver, STEP_BOUND_S)

        if with_token:
            # The control endpoints answered 401: the page asks for the token in a password field.
            token_input = wait.until(lambda d: next(iter(e for e in d.find_elements(*by_testid('token-input'))
                                                         if e.is_displayed()), None))
            assert token_input.get_attribute('type') == 'password'
            token_input.send_keys(TOKEN)
            driver.find_element(*by_testid('token-submit')).click()
        wait.until(lambda d: d.find_element(*by_testid('connection-state')).get_attribute('data-state') == 'live')
        assert not driver.find_element(*by_testid('auth')).is_displayed()
        stored = driver.execute_script('return [localStorage.length, sessionStorage.length, document.cookie]')
        assert stored == [0, 0, ''], f'the token is kept in memory only: {stored}'

        # A conflict, provoked as a client would: read, someone else writes, a write with the stale ETag.
        status, headers, _ = request('GET', proxy + '/items/1')
        assert status == 200 and headers.get('ETag'), f'GET through Arbiter: {status}'
        stale = headers['ETag']
        status, _, _ = request('PUT', proxy + '/items/1', theirs, {'If-Match': stale})
        assert status == 200, f'the first write: {status}'
        status, _, body = request('PUT', proxy + '/items/1', yours, {'If-Match': stale})
        assert status == 409, f'the stale write is refused: {status} {body!r}'
        refused_at = time.monotonic()

        row_locator = by_testid('event-row', '[data-type="conflict"]')
        row = WebDriverWait(driver, ROW_BOUND_S, poll_frequency=0.05).until(
            lambda d: next(iter(d.find_elements(*row_locator)), None))
        print(f'conflict row shown {time.monotonic() - refused_at:.3f} s after the 409')
        cells = {cell.get_attribute('data-field'): cell.text for cell in row.find_elements(By.TAG_NAME, 'td')}
        assert cells['route'] == 'items' and cells['resource'] == '/items/1', cells
        assert cells['your_etag'] == stale, cells
        assert cells['resolved'] == 'no', cells

        # Both versions side by side, the differing field marked in each.
        row.click()
        wait.until(lambda d: d.find_element(*by_testid('conflict-detail')).is_displayed())
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="yours-body"] .line'))
        yours_marked = [e.get_attribute('data-pointer') for e in
                        driver.find_elements(By.CSS_SELECTOR, '[data-testid="yours-body"] .changed-yours, '
                                                              '[data-testid="yours-body"] .changed-both')]
        theirs_marked = [e.get_attribute('data-pointer') for e in
                         driver.find_elements(By.CSS_SELECTOR, '[data-testid="current-body"] .changed-current, '
                                                               '[data-testid="current-body"] .changed-both')]
        assert '/note' in yours_marked, f'yours changed /note: {yours_marked}'
        assert '/status' in theirs_marked, f'theirs changed /status: {theirs_marked}'

        driver.find_element(*by_testid('take-yours')).click()
        result = wait.until(lambda d: (lambda e: e if e.get_attribute('data-status') else None)(
            d.find_element(*by_testid('resolve-result'))))
        assert result.get_attribute('data-status') == '200', f'resolve answered: {result.text}'

        # The backend itself holds the document the page chose.
        status, _, body = request('GET', backend + '/items/1')
        assert status == 200 and json.loads(body) == yours, f'json-server holds {body!r}'

        # The counters caught up (refreshed every few seconds), and the row says it is resolved.
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stats-row"][data-route="items"] '
                                                             '[data-field="conflicts"]').text == '1')
        wait.until(lambda d: d.find_element(*row_locator).find_element(
            By.CSS_SELECTOR, '[data-field="resolved"]').text.startswith('by '))

        problems = [entry['message'] for entry in driver.get_log('browser')
                    if entry['level'] == 'SEVERE' and 'status of 401' not in entry['message']]
        assert not problems, f'the browser console reported: {problems}'

        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.find_element(By.TAG_NAME, 'body').screenshot(str(screenshot))
        processes.check_running()
        print('conflicts page: PASS')
        return 0
    except Exception:
        for log in sorted(Path(directory).glob('*.log')):
            sys.stderr.write(f'--- {log.name}\n{log.read_text(errors="replace")[-4000:]}\n')
        if driver is not None:
            for entry in driver.get_log('browser'):
                sys.stderr.write(f'browser: {entry["level"]} {entry["message"]}\n')
        raise
    finally:
        if driver is not None:
            driver.quit()
        processes.stop_all()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arbiter', default=os.environ.get('ARBITER_BINARY', str(SOURCE_DIR / 'build/arbiter')))
    parser.add_argument('--screenshot', default=str(SOURCE_DIR / 'docs/conflicts-page.png'),
                        help='where the page is photographed; "" for nowhere')
    parser.add_argument('--token', action='store_true', help='configure a [control] token the page must ask for')
    args = parser.parse_args()
    return run(Path(args.arbiter).resolve(), args.screenshot, args.token)


if __name__ == '__main__':
    sys.exit(main())
