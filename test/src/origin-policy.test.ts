import t from 'tap'
import { crossSiteRefusal, isOwnOrigin, type OriginRequest } from '../../src/origin-policy.js'

const request = (method: string, headers: OriginRequest['headers'], protocol = 'https'): OriginRequest =>
  ({ method, protocol, host: 'chat.example:443', headers })
const allowed = ['https://partner.example']

t.test('the server\'s own origin is its scheme and host as the request reached it, default port or not', async (t) => {
  t.ok(isOwnOrigin({ protocol: 'https', host: 'chat.example:443' }, 'https://chat.example'))
  t.ok(isOwnOrigin({ protocol: 'https', host: 'chat.example' }, 'https://chat.example:443'))
  t.notOk(isOwnOrigin({ protocol: 'https', host: 'chat.example' }, 'http://chat.example'), 'another scheme')
  t.notOk(isOwnOrigin({ protocol: 'https', host: 'chat.example' }, 'https://sub.chat.example'), 'another host of the same site')
  t.notOk(isOwnOrigin({ protocol: 'https', host: 'chat.example' }, 'null'))
  t.ok(isOwnOrigin({ protocol: undefined, host: 'localhost:80' }, 'http://localhost'), 'no socket (injectWS): http')
})

t.test('POST, PUT, PATCH and DELETE are refused from another origin, or from another site without one', async (t) => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    t.match(crossSiteRefusal(request(method, { origin: 'https://evil.example' }), allowed), /Origin https:\/\/evil\.example is not allowed/, method)
    t.match(crossSiteRefusal(request(method, { 'sec-fetch-site': 'cross-site' }), allowed), /cross-site/, method)
    t.match(crossSiteRefusal(request(method, { 'sec-fetch-site': 'same-site' }), allowed), /same-site/, method)
    t.equal(crossSiteRefusal(request(method, { origin: 'https://chat.example' }), allowed), undefined)
    t.equal(crossSiteRefusal(request(method, { origin: 'https://partner.example', 'sec-fetch-site': 'cross-site' }), allowed), undefined, 'an allowed origin')
    t.equal(crossSiteRefusal(request(method, {}), allowed), undefined, 'a program: no Origin, no Sec-Fetch-Site')
    t.equal(crossSiteRefusal(request(method, { 'sec-fetch-site': 'same-origin' }), allowed), undefined)
    t.equal(crossSiteRefusal(request(method, { 'sec-fetch-site': 'none' }), allowed), undefined, 'typed by the user')
  }
  t.type(crossSiteRefusal(request('POST', { origin: 'null' }), allowed), 'string', 'Origin null')
})

t.test('GET, HEAD and OPTIONS change nothing and are never refused for their origin', async (t) => {
  for (const method of ['GET', 'HEAD', 'OPTIONS']) {
    t.equal(crossSiteRefusal(request(method, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }), allowed), undefined, method)
  }
})
