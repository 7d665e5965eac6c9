package sandbox

// SandboxOf exposes the live sandbox of a container to the external tests.
func (m *Manager) SandboxOf(container string) Sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[container]
	if e == nil || e.sb == nil {
		return nil
	}
	return e.sb
}
