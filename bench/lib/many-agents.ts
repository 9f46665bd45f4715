/**
 * A folder of many agents, half ARK Agents and half ArkAgents (both dialects' adapters on the path), all on the
 * mock model: what the catalog and memory scenarios load.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export async function writeManyAgents(dir: string, agents: number, files: number): Promise<void> {
  await writeFile(
    join(dir, 'model.yaml'),
    'apiVersion: ark.mckinsey.com/v1alpha1\nkind: Model\nmetadata: { name: default }\nspec: { provider: mock, model: { value: mock } }\n',
  )
  const per = Math.ceil(agents / files)
  for (let f = 0; f < files; f++) {
    const docs: string[] = []
    for (let n = f * per; n < Math.min(agents, (f + 1) * per); n++) {
      docs.push(
        n % 2 === 0
          ? `apiVersion: ark.mckinsey.com/v1alpha1\nkind: Agent\nmetadata: { name: agent-${String(n)} }\nspec:\n  prompt: "You are agent {{.n}}."\n  parameters: [{ name: n, value: "${String(n)}" }]\n  tools: [{ type: built-in, name: calculator }]\n`
          : `apiVersion: arkonis.dev/v1alpha1\nkind: ArkAgent\nmetadata: { name: agent-${String(n)} }\nspec:\n  replicas: 2\n  model: mock\n  systemPrompt: You are agent ${String(n)}.\n  limits: { timeoutSeconds: 60 }\n`,
      )
    }
    await writeFile(join(dir, `agents-${String(f)}.yaml`), docs.join('---\n'))
  }
}
