import { describe, expect, it } from 'vitest'
import { defaultAllowedHosts, hasDotSegment, hostAllowed, hostName, isLoopbackHost } from './guards.ts'

describe('Host checks', () => {
  it('knows loopback names and addresses, and nothing that merely starts like one', () => {
    for (const h of ['localhost', 'LocalHost', 'api.localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]'])
      expect(isLoopbackHost(h), h).toBe(true)
    for (const h of [
      '127.0.0.1.evil.example',
      'localhost.evil.example',
      '128.0.0.1',
      '127.0.0.256',
      '0.0.0.0',
      '',
    ])
      expect(isLoopbackHost(h), h).toBe(false)
  })

  it('reads the name off a Host header, ports and IPv6 brackets included', () => {
    expect(hostName('Example.COM:8080')).toBe('example.com')
    expect(hostName('[::1]:8080')).toBe('[::1]')
    expect(hostName('localhost')).toBe('localhost')
  })

  it('serves loopback names on loopback, named hosts and their subdomains when listed, anything with any', () => {
    expect(hostAllowed('localhost:8080', 'loopback')).toBe(true)
    expect(hostAllowed('rebind.evil.example', 'loopback')).toBe(false)
    expect(hostAllowed(undefined, 'loopback')).toBe(false)
    expect(hostAllowed('ark.example.com', ['ark.example.com'])).toBe(true)
    expect(hostAllowed('a.apps.example.com', ['.apps.example.com'])).toBe(true)
    expect(hostAllowed('apps.example.com', ['.apps.example.com'])).toBe(true)
    expect(hostAllowed('evilapps.example.com', ['.apps.example.com'])).toBe(false)
    expect(hostAllowed('127.0.0.1', ['ark.example.com'])).toBe(true)
    expect(hostAllowed('anything', 'any')).toBe(true)
    expect(defaultAllowedHosts('127.0.0.1')).toBe('loopback')
    expect(defaultAllowedHosts('::1')).toBe('loopback')
    expect(defaultAllowedHosts('0.0.0.0')).toBe('any')
  })
})

describe('dot segments', () => {
  it('finds . and .. segments, encoded or not, and leaves dots inside names alone', () => {
    for (const p of [
      '/v1/../metrics',
      '/v1/%2e%2e/metrics',
      '/v1/%2E%2E',
      '/v1/.%2e/x',
      '/v1/./models',
      '/..',
      '/v1/..?x',
    ])
      expect(hasDotSegment(p), p).toBe(true)
    for (const p of [
      '/v1/models/agent/a.b',
      '/v1/models/..x',
      '/v1/models/x..',
      '/v1/models/%2e%2ex',
      '/v1/models/.well-known',
    ])
      expect(hasDotSegment(p), p).toBe(false)
  })
})
