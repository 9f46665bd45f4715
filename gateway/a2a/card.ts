/**
 * An ark agent's A2A agent card, built from its resource and the catalog: afresh for each card request (a
 * Tool's changed description shows at once); the JSON-RPC path keeps one per version of the agent (server.ts),
 * since it reads only the card's versions and capabilities. Two shapes:
 *
 * - the v1.0 card (`supportedInterfaces`, one JSON-RPC interface per protocol version ark serves), for
 *   clients that ask with `A2A-Version: 1.0`;
 * - the v0.3 card (`url`, `protocolVersion`, `preferredTransport`, `additionalInterfaces`), for clients that
 *   send no version (0.3 is the default the spec gives them) and for `agent.json`. It also carries the v1.0
 *   `supportedInterfaces`, so a v1.0 client that forgot the header still finds its interface.
 *
 * Skills: the agent itself (a message in, an answer out), then one per tool it can call, so that a caller
 * can tell what it is able to do. A team's card is the same, its skills the team and then its members.
 */
import type { AgentCard, AgentSkill } from '@a2a-js/sdk'
import { SecurityScheme } from '@a2a-js/sdk'
import type { AgentTool, ResourceOf, TeamMember } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'

/** The protocol versions ark's JSON-RPC binding serves, newest first. */
export const PROTOCOL_VERSIONS = ['1.0', '0.3'] as const

const TEXT_MODES = ['text/plain', 'application/json']

/** What A2A serves: an agent, or a team of them. */
export type A2ATarget = ResourceOf<'Agent'> | ResourceOf<'Team'>

/** The name cards give ark's API keys among their security schemes. */
const API_KEY = 'apiKey'
const API_KEY_DESCRIPTION = 'An ark API key, as Authorization: Bearer <key>.'

/** The v1.0 card of an agent or team whose JSON-RPC endpoint is `url`. */
export function agentCard(
  catalog: Catalog,
  target: A2ATarget,
  url: string,
  options: {
    readonly pushNotifications: boolean
    /** The gateway asks for API keys: the card says how to send one (a bearer token). */
    readonly authenticated?: boolean
  },
): AgentCard {
  const { name, namespace } = target.ref
  const team = target.kind === 'Team'
  const description =
    target.spec.description ??
    (team
      ? `The ark team ${namespace}/${name} (${target.spec.strategy}, ${String(target.spec.members.length)} members): send it a message, and its members answer it together.`
      : `The ark agent ${namespace}/${name}: send it a message, and it answers with text.`)
  return {
    name,
    description,
    supportedInterfaces: PROTOCOL_VERSIONS.map((protocolVersion) => ({
      url,
      protocolBinding: 'JSONRPC',
      protocolVersion,
      tenant: '',
    })),
    provider: { organization: 'ark', url: 'https://github.com/mckinsey/agents-at-scale-ark' },
    // The resource's generation: a card changes version when its spec does.
    version: String(target.meta.generation ?? 1),
    capabilities: {
      streaming: true,
      pushNotifications: options.pushNotifications,
      extensions: [],
      extendedAgentCard: false,
    },
    ...(options.authenticated === true
      ? {
          securitySchemes: {
            [API_KEY]: {
              scheme: {
                $case: 'httpAuthSecurityScheme',
                value: { description: API_KEY_DESCRIPTION, scheme: 'Bearer', bearerFormat: '' },
              },
            },
          },
          securityRequirements: [{ schemes: { [API_KEY]: { list: [] } } }],
        }
      : { securitySchemes: {}, securityRequirements: [] }),
    defaultInputModes: TEXT_MODES,
    defaultOutputModes: ['text/plain'],
    skills: [
      {
        id: name,
        name,
        description,
        tags: [team ? 'team' : 'agent', `namespace:${namespace}`],
        examples: [],
        inputModes: TEXT_MODES,
        outputModes: ['text/plain'],
        securityRequirements: [],
      },
      ...(target.kind === 'Team'
        ? target.spec.members.map((m) => memberSkill(catalog, m))
        : target.spec.tools.map((tool) => toolSkill(catalog, tool))),
    ],
    signatures: [],
  }
}

/**
 * A v1.0 card as JSON. Its security schemes are a protobuf oneof, which the SDK's types spell
 * `{scheme: {$case, value}}` and its JSON `{httpAuthSecurityScheme: {...}}`: the SDK converts them; every other
 * field of ark's cards is JSON as it is.
 */
export function cardJson(card: AgentCard): Record<string, unknown> {
  return {
    ...card,
    securitySchemes: Object.fromEntries(
      Object.entries(card.securitySchemes).map(([name, scheme]) => [name, SecurityScheme.toJSON(scheme)]),
    ),
  }
}

/** The v0.3 shape of a v1.0 card, with the v1.0 interfaces kept beside. */
export function legacyCard(card: AgentCard): Record<string, unknown> {
  const [primary, ...others] = card.supportedInterfaces.filter((i) => i.protocolVersion === '0.3')
  return {
    name: card.name,
    description: card.description,
    url: primary?.url,
    preferredTransport: 'JSONRPC',
    protocolVersion: '0.3.0',
    additionalInterfaces: others.map((i) => ({ url: i.url, transport: i.protocolBinding })),
    provider: card.provider,
    version: card.version,
    capabilities: {
      streaming: card.capabilities?.streaming ?? false,
      pushNotifications: card.capabilities?.pushNotifications ?? false,
      stateTransitionHistory: false,
    },
    supportsAuthenticatedExtendedCard: false,
    ...(card.securityRequirements.length === 0
      ? {}
      : {
          securitySchemes: {
            [API_KEY]: { type: 'http', scheme: 'bearer', description: API_KEY_DESCRIPTION },
          },
          security: [{ [API_KEY]: [] }],
        }),
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    // A v0.3 skill is a v1.0 skill without securityRequirements (0.3 names it `security`; ark has none yet).
    skills: card.skills.map((s) => ({
      id: s.id,
      name: s.name,
      description: s.description,
      tags: s.tags,
      examples: s.examples,
      inputModes: s.inputModes,
      outputModes: s.outputModes,
    })),
    supportedInterfaces: card.supportedInterfaces,
  }
}

function memberSkill(catalog: Catalog, member: TeamMember): AgentSkill {
  const resource =
    member.type === 'agent' ? catalog.get('Agent', member.ref) : catalog.get('Team', member.ref)
  return {
    id: `member:${member.name}`,
    name: member.name,
    description: resource?.spec.description ?? `the ${member.type} ${member.ref.name}`,
    tags: ['member', member.type],
    examples: [],
    inputModes: [],
    outputModes: [],
    securityRequirements: [],
  }
}

function toolSkill(catalog: Catalog, tool: AgentTool): AgentSkill {
  const skill = (id: string, description: string, tags: string[]): AgentSkill => ({
    id: `tool:${id}`,
    name: id,
    description,
    tags: ['tool', ...tags],
    examples: [],
    inputModes: [],
    outputModes: [],
    securityRequirements: [],
  })
  switch (tool.kind) {
    case 'builtin':
      return skill(tool.name, tool.description ?? `the built-in tool ${tool.name}`, ['builtin'])
    case 'ref': {
      const resource = catalog.get('Tool', tool.ref)
      const id = tool.as ?? tool.ref.name
      return skill(
        id,
        tool.description ?? resource?.spec.description ?? `the tool ${tool.ref.name}`,
        resource === undefined ? [] : [resource.spec.type],
      )
    }
    case 'inline':
      return skill(tool.name, tool.tool.description ?? `the tool ${tool.name}`, [tool.tool.type])
    case 'mcpServer':
      return skill(
        `${tool.server.name}__*`,
        `the tools of the MCP server ${tool.server.name}, named ${tool.server.name}__<tool>`,
        ['mcp'],
      )
  }
}
