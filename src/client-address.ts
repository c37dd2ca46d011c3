import { isIPv4, isIPv6 } from 'node:net'

/** The 16-bit groups of an IPv6 address: the /64 is the first four. */
const groupsOfIPv6 = 8
const groupsOfPrefix = 4

/**
 * The part of a client's address that attempt limits count: an IPv4 address whole, an IPv6
 * address by its /64, written `2001:db8:1:2::/64`. One IPv6 subscriber, host or VM gets a
 * whole /64 and may send from any of its 2^64 addresses, so counting the full address would
 * give one client as many limits as it likes. An IPv4 address mapped into IPv6
 * (`::ffff:192.0.2.1`, as a dual-stack socket reports it) is the IPv4 address. Anything else
 * (it cannot come from a socket) is returned as it is.
 */
export function limitedAddress (ip: string): string {
  if (isIPv4(ip)) return ip
  const address = ip.split('%', 1)[0] ?? ip
  if (!isIPv6(address)) return ip
  const groups = expandIPv6(address)
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6)
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.')
  }
  return `${groups.slice(0, groupsOfPrefix).map((group) => group.toString(16)).join(':')}::/64`
}

/** The eight groups of a valid IPv6 address (without zone), `::` and a dotted IPv4 tail expanded. */
function expandIPv6 (address: string): number[] {
  const groupsOf = (part: string): number[] => part === ''
    ? []
    : part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [Number.parseInt(group, 16)]
      const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number)
      return [(a << 8) | b, (c << 8) | d]
    })
  const [head = '', tail] = address.split('::')
  const headGroups = groupsOf(head)
  const tailGroups = tail === undefined ? [] : groupsOf(tail)
  const zeros = new Array<number>(groupsOfIPv6 - headGroups.length - tailGroups.length).fill(0)
  return [...headGroups, ...zeros, ...tailGroups]
}
