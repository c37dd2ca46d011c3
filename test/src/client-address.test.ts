import t from 'tap'
import { limitedAddress } from '../../src/client-address.js'

t.test('an IPv4 address is counted whole', async (t) => {
  t.equal(limitedAddress('192.0.2.1'), '192.0.2.1')
  t.equal(limitedAddress('::ffff:192.0.2.1'), '192.0.2.1', 'mapped into IPv6, as a dual-stack socket reports it')
  t.equal(limitedAddress('::FFFF:c000:0201'), '192.0.2.1', 'mapped, in hex')
})

t.test('an IPv6 address is counted by its /64, however it is written', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:0:0:0:1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:db8:0:0:1::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64']
  ]
  for (const [ip, key] of cases) t.equal(limitedAddress(ip), key, ip)
})

t.test('anything that is no address is left as it is', async (t) => {
  for (const value of ['', 'localhost', '2001:db8::1::2', '1.2.3']) t.equal(limitedAddress(value), value)
})
