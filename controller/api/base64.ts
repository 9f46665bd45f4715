/** Base64 as Kubernetes writes it (Secret data, ConfigMap binaryData), decoded with Web standards only. */

/** The bytes of `text`; whitespace (line breaks in a manifest) is ignored. */
export function base64Bytes(text: string): Uint8Array {
  const binary = atob(text.replace(/\s+/g, ''))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
